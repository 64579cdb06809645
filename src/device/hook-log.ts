import {access, open} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {mkdirDurable, syncDir} from '../store/atomic-file.js'
import type {DevicePaths} from './paths.js'

/** <root>/var/lib/ferry/hooks.log: every hook run, passed or failed, with the tail of its output. */
export const hookLogPath = (paths: DevicePaths) => join(paths.base, 'hooks.log')

export interface HookLogEntry {
  hook: string
  version: string
  reason: string
  /** "ok", "exit N" or "timed out" */
  outcome: string
  output: string
}

/**
 * Appends one entry: a header line, then the output indented by two spaces. A log that cannot be written
 * (full or read-only disk) never fails the switch; the output is in the command's own output too.
 */
export async function logHookRun(paths: DevicePaths, entry: HookLogEntry): Promise<void> {
  const body = entry.output.trimEnd()
  const text = `${new Date().toISOString()} ${entry.hook} (${entry.reason} ${entry.version}): ${entry.outcome}\n${body ? `${body.replace(/^/gm, '  ')}\n` : ''}`
  try {
    const file = hookLogPath(paths)
    await mkdirDurable(dirname(file))
    const fresh = await access(file).then(() => false, () => true)
    const fh = await open(file, 'a')
    try {
      await fh.writeFile(text)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (fresh) await syncDir(dirname(file))
  } catch {
    // best effort, see above
  }
}
