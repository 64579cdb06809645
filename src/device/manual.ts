import {usageError} from '../errors.js'
import {refuseInFlight} from './apply.js'
import {readDeviceConfig} from './config.js'
import {readState} from './journal.js'
import {withDeviceLock} from './lock.js'
import type {DevicePaths} from './paths.js'
import {requireDevice} from './presence.js'
import {type CommitResult, commitTrial, rollBack} from './settle.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState} from './state-format.js'

/** `device commit`: accept the release in trial without waiting for its checks. */
export async function commitByHand(paths: DevicePaths): Promise<CommitResult> {
  await requireDevice(paths)
  return withDeviceLock(paths, async () => {
    const state = await readState(paths)
    if (state.state !== 'trial') {
      throw usageError('NOT_IN_TRIAL', `nothing is in trial: the device is ${state.state}${state.current ? ` on ${state.current.version}` : ''}; "ferry device status" shows what to run next`)
    }
    return commitTrial(paths, state)
  })
}

/**
 * `device rollback`: leave the release in trial, or the committed one for the previous slot when that
 * slot still holds its release (an import since then overwrote it). The release left is marked bad.
 */
export async function rollBackByHand(paths: DevicePaths): Promise<DeviceState> {
  await requireDevice(paths)
  return withDeviceLock(paths, async () => {
    const state = await readState(paths)
    if (state.state === 'trial') {
      return rollBack(paths, await readDeviceConfig(paths), state, {reason: `${state.current?.version ?? 'the release'} was rolled back by hand during its trial`, markBad: true})
    }
    refuseInFlight(paths, state)
    if (state.state !== 'committed' && state.state !== 'staged') {
      throw usageError('NOTHING_TO_ROLL_BACK', `nothing to roll back: the device is ${state.state}${state.current ? ` on ${state.current.version}` : ''}; "ferry device status" shows what to run next`)
    }
    const back = state.previous
    const kept = back ? await readSlotManifest(paths, back.slot) : undefined
    if (!state.current || !back || kept?.digest !== back.digest) {
      throw usageError('NO_PREVIOUS_RELEASE', 'no previous release to roll back to: its slot is empty or was overwritten by a later import; "ferry device status" shows the releases this device holds')
    }
    return rollBack(paths, await readDeviceConfig(paths), {...state, staged: undefined}, {reason: `${state.current.version} was rolled back by hand to ${back.version}`, markBad: true})
  })
}
