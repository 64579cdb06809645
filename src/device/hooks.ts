import {resolve} from 'node:path'
import {FerryError} from '../errors.js'
import type {DeviceConfig, HookName} from './config.js'
import type {DevicePaths, SlotName} from './paths.js'
import {slotDir} from './paths.js'
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
 * No hook configured → nothing runs. A failing or hanging hook is a health failure (exit 7).
 */
export async function runHook(paths: DevicePaths, config: DeviceConfig, hook: HookName, target: HookTarget): Promise<{ran: boolean; output: string}> {
  const command = config.hooks[hook]
  if (!command) return {ran: false, output: ''}
  const dir = slotDir(paths, target.slot)
  const result = await runShell(command, {
    cwd: dir,
    timeoutMs: config.hooks.timeout * 1000,
    keepBackground: true,
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
  if (!result.ok) {
    const why = result.timedOut ? `no answer within ${config.hooks.timeout}s` : `exit ${result.exitCode ?? 'by signal'}`
    const output = result.output.trim().replace(/\s*\n\s*/g, ' | ')
    throw new FerryError('health', 'HOOK_FAILED', `${hook} hook failed (${why})${output ? `: ${output.slice(-2000)}` : ''}`, {
      details: {hook, output: result.output},
    })
  }
  return {ran: true, output: result.output}
}
