import {resolve} from 'node:path'
import {FerryError} from '../errors.js'
import type {DeviceConfig, HookName} from './config.js'
import type {DevicePaths, SlotName} from './paths.js'
import {slotDir} from './paths.js'
import {logHookRun} from './hook-log.js'
import {runShell} from './shell.js'

/** What a hook is told about the switch, as environment variables. */
export interface HookTarget {
  /** the slot being activated (the new one on apply, the old one on rollback) */
  slot: SlotName
  version: string
  /** the slot being left, when there is one */
  fromSlot?: SlotName
  /** "apply" or "rollback" */
  reason: 'apply' | 'rollback'
}

/**
 * Runs one hook command from device.yaml with `sh -c` in the target slot's folder. Environment:
 * FERRY_ROOT, FERRY_HOOK, FERRY_SLOT, FERRY_SLOT_DIR, FERRY_VERSION, FERRY_FROM_SLOT, FERRY_REASON.
 * No hook configured → nothing runs. A failing or hanging hook is a health failure (exit 7). Every run is
 * appended to <root>/var/lib/ferry/hooks.log with its output, and a passing hook's output lines go to `say`.
 */
export async function runHook(
  paths: DevicePaths,
  config: DeviceConfig,
  hook: HookName,
  target: HookTarget,
  say?: (line: string) => void,
  /** stops the hook (apply's forward steps take Ctrl-C; a rollback's hooks run to their end) */
  signal?: AbortSignal,
): Promise<{ran: boolean; output: string}> {
  const command = config.hooks[hook]
  if (!command) return {ran: false, output: ''}
  const dir = slotDir(paths, target.slot)
  const result = await runShell(command, {
    cwd: dir,
    timeoutMs: config.hooks.timeout * 1000,
    keepBackground: true,
    signal,
    env: {
      FERRY_ROOT: resolve(paths.root),
      FERRY_HOOK: hook,
      FERRY_SLOT: target.slot,
      FERRY_SLOT_DIR: dir,
      FERRY_VERSION: target.version,
      FERRY_FROM_SLOT: target.fromSlot ?? '',
      FERRY_REASON: target.reason,
    },
  })
  const why = result.timedOut ? `no answer within ${config.hooks.timeout}s` : `exit ${result.exitCode ?? 'by signal'}`
  await logHookRun(paths, {hook, version: target.version, reason: target.reason, outcome: result.ok ? 'ok' : why, output: result.output})
  if (!result.ok) {
    const output = result.output.trim().replace(/\s*\n\s*/g, ' | ')
    throw new FerryError('health', 'HOOK_FAILED', `${hook} hook failed (${why})${output ? `: ${output.slice(-2000)}` : ''}`, {
      details: {hook, output: result.output},
    })
  }
  for (const line of result.output.trimEnd().split('\n').filter(Boolean)) say?.(`${hook} hook: ${line}`)
  return {ran: true, output: result.output}
}
