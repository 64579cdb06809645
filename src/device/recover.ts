import {readdir, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {acquirePidLock} from '../store/pid-lock.js'
import {FerryError} from '../errors.js'
import {runTrial} from './apply.js'
import {readDeviceConfig} from './config.js'
import {describeFailure, type HealthReport} from './health.js'
import {readState} from './journal.js'
import {rebuildState} from './rebuild-state.js'
import type {DevicePaths} from './paths.js'
import {commitTrial, record, rollBack} from './settle.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState} from './state-format.js'
import {pointCurrentAt, readCurrentSlot} from './switch.js'

export interface RecoverResult {
  /** what recover did */
  action: 'nothing' | 'committed' | 'import-abandoned' | 'link-repaired'
  state: DeviceState
  message: string
  checks?: HealthReport['checks']
}

/** Temp files a kill can leave next to the journal and the `current` link; never complete, always safe to drop. */
async function dropLeftovers(paths: DevicePaths): Promise<void> {
  const names = await readdir(paths.base).catch(() => [] as string[])
  for (const name of names) {
    if (/^\.(current|state\.json)\..*\.tmp$/.test(name)) await rm(join(paths.base, name), {force: true})
  }
}

function rolledBackError(state: DeviceState, why: string): FerryError {
  const where = state.current ? `the device is on ${state.current.name} ${state.current.version} (slot ${state.current.slot})` : 'no release is active'
  return new FerryError('health', 'ROLLED_BACK', `${why}; rolled back: ${where}`)
}

/**
 * Finishes or undoes whatever the journal shows in flight (run at boot, and by hand after a crash):
 * - verifying (an import was interrupted): back to the state before it, nothing staged;
 * - switching: roll back to the previous release (an interrupted switch is undone, not retried);
 * - trial: finish a commit that had begun, else re-run the health checks, unless the trial was
 *   already interrupted more than `trial.maxAttempts` times: then roll back;
 * - rolling-back: finish the rollback;
 * - settled states: nothing to do (a `current` link that disagrees with the journal is put back).
 * Ending on the old release is reported as health exit 7 (the update did not take), with the reason.
 */
export async function recoverDevice(paths: DevicePaths, options: {say?: (line: string) => void; rebuildState?: boolean} = {}): Promise<RecoverResult> {
  const say = options.say ?? (() => {})
  // At boot on a device never provisioned there is nothing to recover, and nothing to create.
  if (!(await stat(paths.base).catch(() => undefined))?.isDirectory()) {
    return {action: 'nothing', state: await readState(paths), message: `nothing to recover: ${paths.root} holds no Ferry state`}
  }
  const lock = await acquirePidLock(paths.lock, 'the device')
  try {
    await dropLeftovers(paths)
    if (options.rebuildState) say(`state.json rebuilt from the slots; the unreadable file is kept as ${(await rebuildState(paths)).kept}`)
    let state = await readState(paths)
    const config = await readDeviceConfig(paths)
    const target = state.current
    switch (state.state) {
      case 'verifying': {
        // Import clears `staged` in the journal before it touches the slot, so a staged release still named is intact.
        let back = state.before ?? (state.current ? 'committed' : 'idle')
        if (back === 'verifying' || (back === 'staged' && !state.staged)) back = state.current ? 'committed' : 'idle'
        state = await record(paths, state, {state: back, before: undefined, step: undefined})
        return {action: 'import-abandoned', state, message: `an import was interrupted; the device is back to ${back}${state.staged ? '' : ': import the bundle again'}`}
      }
      case 'switching': {
        const why = `applying ${target ? `${target.name} ${target.version}` : 'a release'} was interrupted while switching (step ${state.step ?? '?'})`
        say(`${why}; rolling back`)
        state = await rollBack(paths, config, state, {reason: why, markBad: false})
        throw rolledBackError(state, why)
      }
      case 'rolling-back': {
        const why = state.lastError ?? 'a rollback was interrupted'
        say(`finishing the rollback (${why})`)
        state = await rollBack(paths, config, state, {reason: why, markBad: state.markBad ?? false})
        throw rolledBackError(state, why)
      }
      case 'trial': {
        if (!target) throw new FerryError('integrity', 'STATE_CORRUPT', `${paths.state} shows a trial without a release; restore the device from its previous slot by hand`)
        if (state.step === 'commit') {
          const done = await commitTrial(paths, state)
          return {action: 'committed', state: done.state, message: `finished committing ${target.name} ${target.version}`}
        }
        const attempts = state.trialAttempts + 1
        if (state.trialAttempts > config.trial.maxAttempts) {
          const why = `the trial of ${target.name} ${target.version} was interrupted ${state.trialAttempts} times`
          say(`${why}; rolling back`)
          state = await rollBack(paths, config, state, {reason: why, markBad: true})
          throw rolledBackError(state, why)
        }
        const release = await readSlotManifest(paths, target.slot)
        if (!release || release.digest !== target.digest) {
          const why = `slot ${target.slot} no longer holds ${target.name} ${target.version}`
          state = await rollBack(paths, config, state, {reason: why, markBad: false})
          throw rolledBackError(state, why)
        }
        state = await record(paths, state, {step: 'health', trialAttempts: attempts})
        await pointCurrentAt(paths, target.slot)
        say(`resuming the trial of ${target.name} ${target.version} (attempt ${attempts} of ${config.trial.maxAttempts + 1})`)
        const report = await runTrial(paths, release, target)
        if (!report.ok && report.failed) {
          const why = describeFailure(report.failed)
          say(`${why}; rolling back`)
          state = await rollBack(paths, config, state, {reason: why, markBad: true})
          throw rolledBackError(state, why)
        }
        const done = await commitTrial(paths, state)
        return {action: 'committed', state: done.state, message: `the trial passed; committed ${target.name} ${target.version}`, checks: report.checks}
      }
      default: {
        // Settled: no side effect is pending, so the journal is the truth about `current`.
        const linked = await readCurrentSlot(paths)
        if (linked !== state.current?.slot) {
          await pointCurrentAt(paths, state.current?.slot)
          return {action: 'link-repaired', state, message: `"current" pointed at ${linked ?? 'nothing'}; put back to ${state.current?.slot ?? 'nothing'} as the journal says`}
        }
        return {action: 'nothing', state, message: `nothing to recover: the device is ${state.state}${state.current ? ` on ${state.current.name} ${state.current.version}` : ''}`}
      }
    }
  } finally {
    await lock.release()
  }
}
