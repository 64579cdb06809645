// Shared by the benchmarks: run a command, time it, sample its peak RSS, print ratios to a peer.
import {spawn} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import {fileURLToPath} from 'node:url'

export const REPO = fileURLToPath(new URL('..', import.meta.url))
/** The CLI as a user runs it: the executable itself, so the node flags of its launcher line apply. */
export const FERRY = [fileURLToPath(new URL('../bin/run.js', import.meta.url))]

export interface Run {
  seconds: number
  /** peak resident set of the process tree's root, MiB (VmHWM sampled from /proc) */
  peakMiB: number
  stdout: string
}

async function hwm(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const m = /VmHWM:\s+(\d+) kB/.exec(status)
    return m ? Number(m[1]) / 1024 : undefined
  } catch {
    return undefined
  }
}

/** Runs argv (or a shell line), returns wall time and the peak RSS seen. Throws on a non-zero exit. */
export function run(argv: string[] | string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = Array.isArray(argv)
      ? spawn(argv[0], argv.slice(1), {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
      : spawn('bash', ['-c', argv], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let peak = 0
    let stdout = ''
    let stderr = ''
    const timer = setInterval(async () => {
      const v = await hwm(child.pid!)
      if (v && v > peak) peak = v
    }, 25)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', async () => {
      clearInterval(timer)
    })
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      if (code !== 0) reject(new Error(`${Array.isArray(argv) ? argv.join(' ') : argv} exited ${code}: ${stderr.slice(-2000)}`))
      else resolve({seconds, peakMiB: peak, stdout})
    })
  })
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/**
 * One comparison; without a target no verdict is given, only `note` (by default: a small run kept
 * for the memory curve, where start-up weighs).
 */
export function row(label: string, ours: number, peer: number, target: number | undefined, unit = 's', note = 'no target at this size: start-up weighs; targets are for ~1 GB'): string {
  const ratio = ours / peer
  const verdict = target === undefined ? `(${note})` : `(target ≤ ${target}x: ${ratio <= target ? 'ok' : 'OVER TARGET'})`
  return `${label.padEnd(44)} ferry ${ours.toFixed(2)}${unit}  peer ${peer.toFixed(2)}${unit}  ratio ${ratio.toFixed(2)}x  ${verdict}`
}

export function memRow(label: string, mib: number, limit = 150): string {
  return `${label.padEnd(44)} peak RSS ${mib.toFixed(0)} MiB  (target ≤ ${limit} MiB: ${mib <= limit ? 'ok' : 'OVER TARGET'})`
}
