import {appendFile, mkdir} from 'node:fs/promises'
import {dirname, join} from 'node:path'
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
    await mkdir(dirname(hookLogPath(paths)), {recursive: true})
    await appendFile(hookLogPath(paths), text)
  } catch {
    // best effort, see above
  }
}
