import {ExitCode, type ExitCodeName, FerryError} from '../errors.js'
import type {DeviceConfig} from './config.js'
import {underRoot} from './config.js'
import {collectGarbage, type GcResult} from './gc.js'
import {runHook} from './hooks.js'
import {placeK3sImages} from './k3s-images.js'
import {writeState} from './journal.js'
import {type DevicePaths, slotDir} from './paths.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState, SlotRelease} from './state-format.js'
import {pointCurrentAt} from './switch.js'
import {checkpoint} from './testing.js'
import {committedName, markBad, raiseFloor} from './release-guards.js'

/** Writes the journal, then stops here if a test asked to (see testing.ts). */
export async function record(paths: DevicePaths, state: DeviceState, patch: Partial<DeviceState>): Promise<DeviceState> {
  const next = await writeState(paths, {...state, ...patch})
  checkpoint(next.step ? `${next.state}:${next.step}` : next.state)
  return next
}

export interface CommitResult {
  state: DeviceState
  floor: string
  rotated?: {keys: string[]; threshold: number}
  gc: GcResult
}

/**
 * Makes the release in trial the committed one: raise the anti-rollback floor, adopt a key rotation the
 * release carries, keep the old release as `previous` for a manual rollback, then collect blobs neither
 * slot needs. Each step is safe to repeat, so recover can finish a commit a kill interrupted.
 */
export async function commitTrial(paths: DevicePaths, state: DeviceState): Promise<CommitResult> {
  const release = state.current
  if (!release) throw new FerryError('unexpected', 'NOTHING_IN_TRIAL', 'the journal shows a trial without a release')
  let s = state.step === 'commit' ? state : await record(paths, state, {state: 'trial', step: 'commit'})
  const floor = await raiseFloor(paths, release.name, release.version, committedName(state))
  const rotation = (await readSlotManifest(paths, release.slot))?.rotation
  // The OpenPGP code is loaded only when a rotation is there to adopt: apply starts fast on small devices.
  const rotated = rotation ? await (await import('./trust-store.js')).adoptRotation(paths, rotation) : undefined
  checkpoint('trial:commit:done')
  s = await record(paths, s, {state: 'committed', step: undefined, staged: undefined, lastError: undefined, markBad: undefined})
  // The release is committed whatever happens here: a collection that fails is reported and retried at the next commit.
  const gc = await collectGarbage(paths).catch((err): GcResult => ({removed: 0, freed: 0, kept: 0, error: (err as Error).message}))
  return {state: s, floor, ...(rotated ? {rotated} : {}), gc}
}

export interface RollbackOptions {
  /** why: the failing check's name and output, or what interrupted the apply */
  reason: string
  /** mark the release being left as bad (an unhealthy release), not for an interrupted switch */
  markBad: boolean
  /** leave the release being left staged, so that apply can try it again (an apply that was interrupted) */
  keepStaged?: boolean
}

/**
 * Puts the device back on `state.previous` (or on nothing, for a device that never committed): switch
 * `current` back, put the old release's airgap images back for K3s, run the `activate` hook for the old
 * slot, mark the release being left bad if asked. Journaled step by step and safe to repeat from any step,
 * so recover can finish a rollback a kill interrupted. The old release's images were never removed from
 * containerd, and its binaries are in its slot: nothing is fetched.
 */
export async function rollBack(paths: DevicePaths, config: DeviceConfig, state: DeviceState, options: RollbackOptions): Promise<DeviceState> {
  const leaving = state.current
  const back = state.previous
  let s = state
  if (s.state !== 'rolling-back') {
    s = await record(paths, s, {state: 'rolling-back', step: 'link', lastError: options.reason, markBad: options.markBad})
  }
  await pointCurrentAt(paths, back?.slot)
  checkpoint('rolling-back:link:done')

  const notes: string[] = []
  if (back) {
    const release = await readSlotManifest(paths, back.slot)
    if (config.k3s && release) {
      s = await record(paths, s, {step: 'k3s-images'})
      await placeK3sImages(underRoot(paths, config.k3s.imagesDir), slotDir(paths, back.slot), paths.blobs, release)
    }
    s = await record(paths, s, {step: 'activate'})
    try {
      await runHook(paths, config, 'activate', {slot: back.slot, version: back.version, fromSlot: leaving?.slot, reason: 'rollback'})
    } catch (err) {
      // The old release is what the device ends on whatever the hook says; the failure is reported, not fatal.
      notes.push(`the activate hook for ${back.version} failed too: ${(err as Error).message}`)
    }
    checkpoint('rolling-back:activate:done')
  }
  if (leaving && s.markBad) {
    s = await record(paths, s, {step: 'mark-bad'})
    await markBad(paths, leaving.digest, {name: leaving.name, version: leaving.version, reason: s.lastError})
  }
  const lastError = [s.lastError ?? options.reason, ...notes].join('; ')
  const staged = options.keepStaged && leaving && leaving.slot !== back?.slot ? leaving : undefined
  return record(paths, s, {state: staged ? 'staged' : 'rolled-back', step: undefined, current: back, previous: undefined, staged, markBad: undefined, lastError})
}

/** The same error kind with a longer message: "<what failed>; rolled back to <version>". */
export function withRollbackNote(err: FerryError, back: SlotRelease | undefined): FerryError {
  const kind = (Object.keys(ExitCode) as ExitCodeName[]).find((k) => ExitCode[k] === err.exit) ?? 'unexpected'
  const where = back ? `rolled back to ${back.name} ${back.version} (slot ${back.slot})` : 'rolled back: no release is active'
  return new FerryError(kind, err.code, `${err.message}; ${where}`, {cause: err.cause, details: err.data})
}
