import {spawn} from 'node:child_process'
import {interruptedError} from '../interrupt.js'

export interface ShellOptions {
  cwd: string
  /** added to the environment of the command */
  env: Record<string, string>
  /** milliseconds before the command and everything it started are killed */
  timeoutMs: number
  /** leave processes the command started in the background running when it exits (hooks start services) */
  keepBackground?: boolean
  /** stops the command and everything it started (a Ctrl-C of the apply): the call then rejects with INTERRUPTED */
  signal?: AbortSignal
}

export interface ShellResult {
  ok: boolean
  /** exit code, when the command exited by itself */
  exitCode?: number
  timedOut: boolean
  /** the last bytes of stdout and stderr together */
  output: string
}

/** How much of a command's output is kept: the end is where the reason usually is. */
const TAIL_BYTES = 8 * 1024

/**
 * Runs `sh -c command` in its own process group. On timeout the whole group is killed (SIGKILL), so a
 * check that forks a hanging child cannot hold the trial open. Only the output's tail is kept.
 */
export function runShell(command: string, options: ShellOptions): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      cwd: options.cwd,
      env: {...process.env, ...options.env},
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let tail = Buffer.alloc(0)
    const keep = (chunk: Buffer) => {
      tail = Buffer.concat([tail, chunk])
      if (tail.length > TAIL_BYTES) tail = tail.subarray(tail.length - TAIL_BYTES)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    let timedOut = false
    let settled = false
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL')
      } catch {
        // the group is already gone
      }
    }
    const timer = setTimeout(() => {
      timedOut = true
      killGroup()
    }, options.timeoutMs)
    const stop = () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      killGroup()
      reject(interruptedError())
    }
    if (options.signal?.aborted) stop()
    options.signal?.addEventListener('abort', stop, {once: true})
    const finish = (code: number | null) => {
      options.signal?.removeEventListener('abort', stop)
      if (settled) return
      settled = true
      clearTimeout(timer)
      // Whatever a check left running in its group goes with it.
      if (timedOut || !options.keepBackground) killGroup()
      child.stdout.destroy()
      child.stderr.destroy()
      const exitCode = code ?? undefined
      resolve({ok: !timedOut && code === 0, exitCode: timedOut ? undefined : exitCode, timedOut, output: tail.toString('utf8')})
    }
    child.on('error', (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      reject(err)
    })
    // 'close' waits for the pipes; a detached grandchild could hold them, so 'exit' plus a short drain also ends it.
    child.on('close', (code) => finish(code))
    child.on('exit', (code) => setTimeout(() => finish(code), 200).unref())
  })
}
