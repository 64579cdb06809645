// Traces for the power-cut replay (power-cut.ts): `strace -f` of a ferry run with every byte it writes, and
// the decoding of strace's `-xx` strings.
import {spawn} from 'node:child_process'
import {REPO} from './cli.js'

const TRACED = ['openat', 'open', 'creat', 'write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'copy_file_range', 'sendfile', 'ftruncate', 'fsync', 'fdatasync', 'rename', 'renameat', 'renameat2', 'link', 'linkat', 'symlink', 'symlinkat', 'unlink', 'unlinkat', 'mkdir', 'mkdirat', 'rmdir', 'chmod', 'fchmod', 'fchmodat', 'clone', 'clone3', 'fork', 'vfork']

/** Runs `ferry ARGS` under strace, recording every byte written (the trace for `replay`). */
export function traceWithData(args: string[], file: string): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((done, fail) => {
    const child = spawn('strace', ['-f', '-qq', '-y', '-xx', '-v', '-s', String(64 << 20), '-o', file, '-e', `trace=${TRACED.join(',')}`, `${REPO}/bin/run.js`, ...args], {
      cwd: REPO,
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', fail)
    child.on('close', (code) => done({code, stdout, stderr}))
  })
}

/** Decodes strace's `-xx` strings ("\x2f\x74…"). */
export function hex(text: string): Buffer {
  const body = text.replace(/^"|"$/g, '')
  return Buffer.from(body.replace(/\\x/g, ''), 'hex')
}
export const fdPath = (arg: string) => {
  const m = /<((?:\\x[0-9a-f]{2})*)>$/.exec(arg.trim())
  return m ? hex(m[1]).toString() : undefined
}
export const strings = (text: string) => [...text.matchAll(/"((?:\\x[0-9a-f]{2})*)"/g)].map((m) => hex(m[1]))

