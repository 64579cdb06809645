// Injected faults for end-to-end runs of the ferry binary: `strace -e inject=…` where per-thread counting
// is enough (every call on one path failing), and an LD_PRELOAD shim (fail-open.c, built with gcc on first
// use) that fails the Nth open-for-write under a folder, counted across all threads.
import {execFileSync, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {type CliResult, ferry, REPO} from './cli.js'

const SHIM_SOURCE = join(REPO, 'test', 'helpers', 'fail-open.c')

/** The shim's shared object, compiled once per source version. */
export function failOpenShim(): string {
  const source = readFileSync(SHIM_SOURCE)
  const out = join(tmpdir(), `ferry-fail-open-${createHash('sha256').update(source).digest('hex').slice(0, 12)}.so`)
  if (!existsSync(out)) execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-o', out, SHIM_SOURCE, '-ldl'])
  return out
}

/** Runs ferry with the Nth open-for-write under `prefix` failing with `errno` (13 EACCES, 28 ENOSPC, 5 EIO). */
export function ferryFailingOpen(args: string[], fault: {prefix: string; nth: number; errno: number}): Promise<CliResult> {
  return ferry(args, {env: {LD_PRELOAD: failOpenShim(), FERRY_FAULT_PREFIX: fault.prefix, FERRY_FAULT_NTH: String(fault.nth), FERRY_FAULT_ERRNO: String(fault.errno)}})
}

/**
 * Runs ferry under strace with every `syscall` on `path` failing with `error` (e.g. fsync on a folder, write
 * to the lock file): `strace -f -P path -e inject=SYSCALL:error=ERROR`.
 */
export function ferryFailingCall(args: string[], fault: {syscall: string; path: string; error: string}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-P', fault.path, '-e', `trace=${fault.syscall}`, '-e', `inject=${fault.syscall}:error=${fault.error}`, join(REPO, 'bin/run.js'), ...args], {
      cwd: REPO,
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      let json
      try {
        json = JSON.parse(stdout)
      } catch {
        json = undefined
      }
      resolve({code, stdout, stderr, json})
    })
  })
}
