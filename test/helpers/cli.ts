// Runs the built `ferry` binary the way a user or a scheduled job does.
import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** the parsed `--json` envelope, when stdout held one */
  json?: {status: number; result?: any; error?: {code: string; message: string}}
}

export function ferry(args: string[], opts: {env?: Record<string, string | undefined>; cwd?: string} = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // run as a user runs it: the executable itself, so its launcher flags apply
    const child = spawn(BIN, args, {
      cwd: opts.cwd ?? REPO,
      env: {...process.env, NO_COLOR: '1', ...opts.env},
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
