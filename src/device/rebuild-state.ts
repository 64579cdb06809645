import semver from 'semver'
import {renameDurable} from '../store/atomic-file.js'
import {usageError} from '../errors.js'
import {readState, writeState} from './journal.js'
import {type DevicePaths, otherSlot, type SlotName} from './paths.js'
import {readFloor} from './release-guards.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState, SlotRelease} from './state-format.js'
import {readCurrentSlot} from './switch.js'

async function slotRelease(paths: DevicePaths, slot: SlotName): Promise<SlotRelease | undefined> {
  const m = await readSlotManifest(paths, slot).catch(() => undefined)
  return m ? {slot, name: m.name, version: m.version, digest: m.digest} : undefined
}

/**
 * Writes a new state.json from what the disk still shows, for a journal that cannot be read: `current`
 * is the release the `current` link points at, the other slot's release the one to roll back to. A
 * current release above its name's floor was never committed, so it is put back in trial, for recover
 * to re-run its health checks. The unreadable file is kept beside it as state.json.corrupt-<time>.
 */
export async function rebuildState(paths: DevicePaths): Promise<{state: DeviceState; kept: string}> {
  const readable = await readState(paths).then(
    () => true,
    () => false,
  )
  if (readable) throw usageError('STATE_READABLE', `${paths.state} is readable: nothing to rebuild; run "ferry device recover" without --rebuild-state`)
  const kept = `${paths.state}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
  await renameDurable(paths.state, kept)
  const slot = await readCurrentSlot(paths)
  const current = slot ? await slotRelease(paths, slot) : undefined
  const previous = slot ? await slotRelease(paths, otherSlot(slot)) : undefined
  const floor = current ? await readFloor(paths, current.name, current.name) : undefined
  const committed = current && floor !== undefined && semver.valid(current.version) && semver.lte(current.version, floor)
  const state = await writeState(paths, {
    schema: 'ferry.device-state/v1',
    state: current ? (committed ? 'committed' : 'trial') : 'idle',
    ...(current ? {current} : {}),
    ...(previous ? {previous} : {}),
    trialAttempts: 0,
    lastError: `state.json was unreadable and was rebuilt from the slots (the old file is ${kept})`,
    updated: new Date().toISOString(),
  })
  return {state, kept}
}
