import {seenTime} from './clock.js'
import {readState} from './journal.js'
import type {DevicePaths} from './paths.js'
import type {DeviceStateName, SlotRelease} from './state-format.js'
import {committedName, listFloors, listTrustedKeys, readFloor} from './trust-store.js'

export interface DeviceStatus {
  state: DeviceStateName
  /** the step of an apply or import in flight, when one was interrupted */
  step: string | null
  current: SlotRelease | null
  previous: SlotRelease | null
  staged: SlotRelease | null
  /** the committed anti-rollback floor of the bundle name the device runs: bundles below it are refused */
  floor: string | null
  /** every bundle name's floor (name → version); "*" is a floor from before floors were kept per name */
  floors: Record<string, string>
  trustedKeys: Array<{fingerprint: string; userIds: string[]}>
  /** signatures from this many trusted keys are required */
  threshold: number
  revokedKeys: string[]
  /** the highest time the device has seen (ISO 8601) */
  highestTimeSeen: string | null
  lastError: string | null
  updated: string
}

/** What the device runs, what it could roll back to, what is staged, and what it trusts. Read-only, no lock. */
export async function deviceStatus(paths: DevicePaths): Promise<DeviceStatus> {
  const state = await readState(paths)
  const trust = await listTrustedKeys(paths)
  const seen = await seenTime(paths)
  return {
    state: state.state,
    step: state.step ?? null,
    current: state.current ?? null,
    previous: state.previous ?? null,
    staged: state.staged ?? null,
    floor: (await readFloor(paths, committedName(state) ?? state.staged?.name ?? '', committedName(state))) ?? null,
    floors: await listFloors(paths, committedName(state)),
    trustedKeys: trust.keys.map((k) => ({fingerprint: k.fingerprint, userIds: k.userIds})),
    threshold: trust.threshold,
    revokedKeys: trust.revoked,
    highestTimeSeen: seen ? seen.toISOString() : null,
    lastError: state.lastError ?? null,
    updated: state.updated,
  }
}
