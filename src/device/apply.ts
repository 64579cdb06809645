import {resolve} from 'node:path'
import {acquirePidLock} from '../store/pid-lock.js'
import {FerryError, toFerryError, usageError} from '../errors.js'
import {containerdAddress, type DeviceConfig, readDeviceConfig, underRoot} from './config.js'
import {importImagesToContainerd} from './containerd.js'
import {describeFailure, type CheckListener, type HealthReport, runHealthChecks} from './health.js'
import {runHook} from './hooks.js'
import {readState} from './journal.js'
import {placeK3sImages} from './k3s-images.js'
import {type DevicePaths, slotDir} from './paths.js'
import {type CommitResult, commitTrial, record, rollBack, withRollbackNote} from './settle.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState, SlotManifest, SlotRelease} from './state-format.js'
import {requireDevice} from './presence.js'
import {pointCurrentAt} from './switch.js'
import {checkpoint} from './testing.js'
import {interruptedError, interruption, throwIfInterrupted} from '../interrupt.js'

export interface ApplyOptions {
  /** --containerd-address; else $CONTAINERD_ADDRESS, else device.yaml */
  containerdAddress?: string
  /** --namespace; else device.yaml, else k8s.io */
  namespace?: string
  /** one plain line per step, for the technician */
  say?: (line: string) => void
  onCheck?: CheckListener
}

export interface ApplyResult {
  outcome: 'committed' | 'already-applied'
  state: DeviceState
  release: SlotRelease
  previous?: SlotRelease
  checks: HealthReport['checks']
  commit?: Omit<CommitResult, 'state'>
}

/** States in which an earlier apply or import was interrupted: recover must run first. */
const IN_FLIGHT = new Set(['verifying', 'switching', 'trial', 'rolling-back'])

export function refuseInFlight(paths: DevicePaths, state: DeviceState): void {
  if (IN_FLIGHT.has(state.state)) {
    throw usageError('RECOVER_FIRST', `the device is in "${state.state}" (an earlier run was interrupted); run "ferry device recover --root ${paths.root}" first`)
  }
}

/** The staged slot's release.json, checked against what the journal says was staged. */
async function stagedRelease(paths: DevicePaths, staged: SlotRelease): Promise<SlotManifest> {
  const release = await readSlotManifest(paths, staged.slot)
  if (!release || release.digest !== staged.digest) {
    throw new FerryError('integrity', 'STAGED_SLOT_CHANGED', `slot ${staged.slot} no longer holds the staged ${staged.name} ${staged.version}; import the bundle again`)
  }
  return release
}

/** Where images go on this device; a release with images and nowhere to put them is refused before any change. */
function imageTargets(config: DeviceConfig, release: SlotManifest, options: ApplyOptions) {
  const address = containerdAddress(config, options.containerdAddress)
  const containerd = address
    ? {address, namespace: options.namespace ?? config.containerd?.namespace ?? 'k8s.io', ctr: config.containerd?.ctr ?? 'ctr', ...(config.platform ? {platform: config.platform} : {})}
    : undefined
  if (release.images.length > 0 && !containerd && !config.k3s) {
    throw usageError(
      'NO_IMAGE_RUNTIME',
      `${release.name} ${release.version} carries ${release.images.length} image(s) but this device names no containerd socket nor K3s images folder: set --containerd-address, $CONTAINERD_ADDRESS, or containerd/k3s in device.yaml`,
    )
  }
  return {containerd}
}

/**
 * Switches the device to the staged release and tries it: journal → images → pre-switch hook → `current`
 * → activate hook → post-switch hook → trial (the release's health checks) → commit. Any failure rolls back
 * to the previous release (health exit 7, the release marked bad); the journal is written before each side
 * effect, so `recover` can finish or undo whatever a kill or power cut interrupted.
 */
export async function applyStaged(paths: DevicePaths, options: ApplyOptions = {}): Promise<ApplyResult> {
  const say = options.say ?? (() => {})
  await requireDevice(paths)
  const lock = await acquirePidLock(paths.lock, 'the device')
  try {
    let state = await readState(paths)
    refuseInFlight(paths, state)
    const staged = state.staged
    if (!staged) throw usageError('NOTHING_STAGED', `nothing is staged on ${paths.root}: run "ferry device import BUNDLE --root ${paths.root}" first`)
    const release = await stagedRelease(paths, staged)
    const old = state.current
    if (old && old.digest === staged.digest) {
      state = await record(paths, state, {state: 'committed', staged: undefined})
      return {outcome: 'already-applied', state, release: old, ...(state.previous ? {previous: state.previous} : {}), checks: []}
    }
    if (old && old.slot === staged.slot) {
      throw new FerryError('integrity', 'STAGED_IN_ACTIVE_SLOT', `the staged release is in slot ${staged.slot}, the active one; import the bundle again`)
    }
    const config = await readDeviceConfig(paths)
    const targets = imageTargets(config, release, options)
    const hookTarget = {slot: staged.slot, version: staged.version, fromSlot: old?.slot, reason: 'apply' as const}

    say(`switching to ${staged.name} ${staged.version} (slot ${staged.slot})${old ? `, from ${old.version} (slot ${old.slot})` : ''}`)
    state = await record(paths, state, {state: 'switching', step: 'images', current: staged, previous: old, staged: undefined, trialAttempts: 0, lastError: undefined})
    let report: HealthReport
    try {
      throwIfInterrupted()
      if (targets.containerd && release.images.length > 0) {
        say(`importing ${release.images.length} image(s) into containerd (${targets.containerd.namespace})`)
        await importImagesToContainerd(paths.blobs, release.images, targets.containerd)
      }
      checkpoint('switching:images:done')
      state = await record(paths, state, {step: 'k3s-images'})
      if (config.k3s) {
        const imagesDir = underRoot(paths, config.k3s.imagesDir)
        const placed = await placeK3sImages(imagesDir, slotDir(paths, staged.slot), paths.blobs, release)
        if (placed.length) say(`placed ${placed.length} image archive(s) in ${imagesDir}`)
      }
      state = await record(paths, state, {step: 'pre-switch'})
      throwIfInterrupted()
      await runHook(paths, config, 'pre-switch', hookTarget, say, interruption)
      state = await record(paths, state, {step: 'link'})
      throwIfInterrupted()
      await pointCurrentAt(paths, staged.slot)
      checkpoint('switching:link:done')
      state = await record(paths, state, {step: 'activate'})
      await runHook(paths, config, 'activate', hookTarget, say, interruption)
      state = await record(paths, state, {step: 'post-switch'})
      await runHook(paths, config, 'post-switch', hookTarget, say, interruption)
      state = await record(paths, state, {state: 'trial', step: 'health', trialAttempts: 1})
      say(`trial: running ${release.health.length} health check(s)`)
      report = await runTrial(paths, release, staged, options.onCheck)
    } catch (caught) {
      if (caught instanceof FerryError && caught.code === 'INTERRUPTED') {
        // Stopped by Ctrl-C / SIGTERM: back to the release that ran, the new one neither bad nor lost.
        say(`stopped at ${state.step ?? state.state}; going back to ${old ? old.version : 'no release'}`)
        const after = await rollBack(paths, config, state, {reason: 'the apply was interrupted', markBad: false, keepStaged: true})
        const where = after.current ? `the device is back on ${after.current.name} ${after.current.version}` : 'the device is back on no release'
        throw interruptedError(`${where}; ${staged.version} is still staged: run "ferry device apply --root ${paths.root}" again`)
      }
      const err = toFerryError(caught)
      // A hook that failed is the release's fault; the runtime failing to take images is not.
      const bad = err.exit === 7
      say(`${err.message}; rolling back`)
      const after = await rollBack(paths, config, state, {reason: err.message, markBad: bad})
      throw withRollbackNote(err, after.current)
    }
    if (!report.ok && report.failed) {
      const reason = describeFailure(report.failed)
      say(`${reason}; rolling back`)
      const after = await rollBack(paths, config, state, {reason, markBad: true})
      throw withRollbackNote(new FerryError('health', 'HEALTH_CHECK_FAILED', reason, {details: {checks: report.checks}}), after.current)
    }
    const committed = await commitTrial(paths, state)
    say(`committed ${staged.name} ${staged.version}; the anti-rollback floor is ${committed.floor}`)
    const {state: finalState, ...commit} = committed
    return {outcome: 'committed', state: finalState, release: staged, ...(old ? {previous: old} : {}), checks: report.checks, commit}
  } finally {
    await lock.release()
  }
}

/** Runs the checks of the release in trial, in its slot, with FERRY_ROOT, FERRY_SLOT and FERRY_VERSION set. */
export function runTrial(paths: DevicePaths, release: SlotManifest, target: SlotRelease, onCheck?: CheckListener): Promise<HealthReport> {
  return runHealthChecks(
    release.health,
    {slotDir: resolve(slotDir(paths, target.slot)), env: {FERRY_ROOT: resolve(paths.root), FERRY_SLOT: target.slot, FERRY_VERSION: target.version}},
    onCheck,
  )
}
