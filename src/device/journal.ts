import {asLocalIoError} from '../errors.js'
import {writeFileAtomic} from '../store/atomic-file.js'
import {readJsonFile} from '../store/json-file.js'
import type {DevicePaths} from './paths.js'
import {DeviceState} from './state-format.js'

const INITIAL: DeviceState = {schema: 'ferry.device-state/v1', state: 'idle', trialAttempts: 0, updated: new Date(0).toISOString()}

/** Reads state.json; a device never touched by Ferry is `idle` with nothing installed. */
export async function readState(paths: DevicePaths): Promise<DeviceState> {
  const state = await readJsonFile(paths.state, DeviceState, 'STATE_CORRUPT', 'run "ferry device recover --rebuild-state" to rebuild it from the slots (the disk may be failing: it is only ever replaced by an atomic rename)')
  return state ?? {...INITIAL}
}

/** Records the next state in the journal. Call it BEFORE the side effect it announces. */
export async function writeState(paths: DevicePaths, state: DeviceState, options: {sync?: boolean} = {}): Promise<DeviceState> {
  const next = DeviceState.parse({...state, updated: new Date().toISOString()})
  await writeFileAtomic(paths.state, JSON.stringify(next, null, 2) + '\n', options).catch((err: unknown) => {
    throw asLocalIoError(err, `writing the device journal ${paths.state}`)
  })
  return next
}
