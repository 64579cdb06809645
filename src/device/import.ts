import {readFile} from 'node:fs/promises'
import {type BundleInput, openBundleInput} from '../bundle/input.js'
import {type BaseBlobs, verifyBundleStream} from '../bundle/verify.js'
import {acquirePidLock} from '../store/pid-lock.js'
import {FerryError, usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {deviceNow, recordTime, systemNow} from './clock.js'
import {readDeviceConfig} from './config.js'
import {DeviceBlobs} from './device-blobs.js'
import {AlreadyApplied, checkRelease, peekSpaceNeeded} from './import-checks.js'
import {unlinkDurable, writeFileAtomic} from '../store/atomic-file.js'
import {readState, writeState} from './journal.js'
import {type DevicePaths, otherSlot, type SlotName} from './paths.js'
import {hostPlatform} from './platform.js'
import {requireDevice} from './presence.js'
import {ensureFreeSpace} from './space.js'
import {stageSlot} from './stage-slot.js'
import {rebuildIntoStore} from './rebuild-artifacts.js'
import {rebuiltArtifacts} from '../bundle/chunk-rebuild.js'
import type {DeviceState, DeviceStateName} from './state-format.js'
import {checkpoint} from './testing.js'
import {checkBundleSignatures, loadTrust} from './trust-store.js'

export interface ImportOptions {
  /** the device's platform; default device.yaml's `platform`, else linux/<this machine's arch> */
  platform?: string
  /** import a release a rollback marked bad */
  force?: boolean
  /** accept a bundle of another name than the one the device runs (the device becomes that bundle's site) */
  switchName?: boolean
  onProgress?: ProgressListener
}

export interface ImportResult {
  status: 'staged' | 'already-applied'
  name: string
  version: string
  /** sha256 of bundle.json */
  digest: string
  /** the slot staged (for already-applied: the slot holding it) */
  slot: SlotName
  platform: string
  signers: string[]
  /** blobs in the bundle, and how many of them (and bytes) were new to the device store */
  blobs: number
  stored: {blobs: number; bytes: number}
  bytes: number
  /** fingerprints of the key set the release will rotate to at commit */
  rotation?: {keys: string[]; threshold: number}
}

/** Where a device goes back to when an import stops: what it was, minus a staged release the import replaced. */
function settled(state: DeviceState): DeviceStateName {
  if (state.state === 'verifying') return state.before ?? (state.current ? 'committed' : 'idle')
  if (state.state === 'staged' && !state.staged) return state.current ? 'committed' : 'idle'
  return state.state
}

/** Puts state.json back exactly as it was (or absent), so a refused import changes nothing at all. */
async function restoreState(paths: DevicePaths, raw: Buffer | undefined): Promise<void> {
  if (raw === undefined) await unlinkDurable(paths.state)
  else await writeFileAtomic(paths.state, raw).catch(() => writeFileAtomic(paths.state, raw, {sync: false}))
}

/** The bundle was refused (usage, integrity, trust): the device is left exactly as it was. */
const isRefusal = (err: unknown) => err instanceof FerryError && [2, 3, 4].includes(err.exit)

/** How far an import got before it stopped, for putting the journal back (see settleFailedImport). */
interface Progress {
  /** state.json's bytes before the import */
  raw?: Buffer
  /** the device's settled state before the import */
  before?: DeviceState
  /** the journal while the slot was being filled (the slot's old release is gone from it) */
  staging?: DeviceState
  /** the journal has been written by this import */
  journaled: boolean
}

/**
 * After an import stopped: a refused bundle leaves state.json as it was; a failure of the device itself
 * (a full disk, an I/O error) leaves the state from before the import with the reason in `lastError`, so
 * `device status` shows the release the device runs and why the import failed. Temp files go first (on a
 * full disk that is what makes room for the journal); a journal that cannot be flushed is still renamed
 * into place (a power cut then finds either it or the `verifying` one, which `recover` settles).
 */
async function settleFailedImport(paths: DevicePaths, blobs: DeviceBlobs, at: Progress, err: unknown): Promise<void> {
  await blobs.flush().catch(() => undefined)
  await blobs.dropTemp().catch(() => undefined)
  if (!at.before) return
  if (isRefusal(err) && !at.staging) {
    if (at.journaled) await restoreState(paths, at.raw)
    return
  }
  const base = at.staging ? {...at.staging, state: at.staging.before ?? settled(at.staging)} : at.before
  const next: DeviceState = {...base, step: undefined, before: undefined, lastError: (err as Error).message}
  await writeState(paths, next).catch(() => writeState(paths, next, {sync: false}))
}

/**
 * Imports a bundle into the inactive slot: one streaming verify against the trust store (threshold, expiry
 * against the device's time, platform, anti-rollback, bad releases), every blob written into the device store
 * as it streams by, then the slot filled and release.json written last. Nothing is staged unless everything
 * verified; a refused import leaves state.json and the slots as they were.
 */
export async function importBundle(paths: DevicePaths, bundlePath: string, opts: ImportOptions = {}): Promise<ImportResult> {
  await requireDevice(paths)
  const input = await openBundleInput(bundlePath)
  const platform = opts.platform ?? (await readDeviceConfig(paths)).platform ?? hostPlatform()
  const blobs = new DeviceBlobs(paths)
  const needed = await peekSpaceNeeded(input, blobs, platform)
  await ensureFreeSpace(paths.base, needed, `importing ${input.label}`)
  const lock = await acquirePidLock(paths.lock, 'the device')
  const at: Progress = {journaled: false}
  try {
    return await importLocked(paths, input, blobs, platform, opts, at)
  } catch (err) {
    if (err instanceof AlreadyApplied) {
      // the version the device runs: nothing changes (the journal is put back as it was)
      await settleFailedImport(paths, blobs, at, usageError('ALREADY_APPLIED', err.message)).catch(() => undefined)
      const c = at.before!.current!
      return {status: 'already-applied', name: c.name, version: c.version, digest: err.digest, slot: c.slot, platform, signers: [], blobs: 0, stored: {blobs: 0, bytes: 0}, bytes: 0}
    }
    await settleFailedImport(paths, blobs, at, err).catch(() => undefined)
    throw err
  } finally {
    await lock.release()
  }
}

/** The import itself, under the device lock; `at` records how far it got (see settleFailedImport). */
async function importLocked(paths: DevicePaths, input: BundleInput, blobs: DeviceBlobs, platform: string, opts: ImportOptions, at: Progress): Promise<ImportResult> {
  at.raw = await readFile(paths.state).catch((err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  })
  const state = await readState(paths)
  if (['switching', 'trial', 'rolling-back'].includes(state.state)) {
    throw new FerryError('busy', 'APPLY_INTERRUPTED', `an apply was interrupted (state ${state.state}); run "ferry device recover --root ${paths.root}" before importing`)
  }
  const before: DeviceState = {...state, state: settled(state), step: undefined, before: undefined}
  at.before = before
  const now = await deviceNow(paths)
  const trust = await loadTrust(paths)
  await blobs.init()
  at.journaled = true
  await writeState(paths, {...before, state: 'verifying', step: 'verify', before: before.state})
  checkpoint('verifying:verify')

  let signature: Buffer = Buffer.alloc(0)
  let rotation: ImportResult['rotation']
  const options: Parameters<typeof verifyBundleStream>[1] = {
    keys: [],
    now,
    totalSize: input.size,
    onProgress: opts.onProgress,
    blobSink: (digest) => blobs.sink(digest),
    checkSignature: async (bundleJson, sig) => {
      signature = sig
      const signers = await checkBundleSignatures(paths, bundleJson, sig, {now, trust})
      const checked = await checkRelease(paths, bundleJson, {state: before, platform, force: opts.force, switchName: opts.switchName, blobs})
      rotation = checked.rotation
      if (checked.base) options.base = checked.base satisfies BaseBlobs
      return signers
    },
  }
  const report = await verifyBundleStream(input.open(), options)
  await blobs.flush()
  if (rebuiltArtifacts(report.manifest).length) {
    // A chunked delta: its VM images (and chunked files) are rebuilt from the base's copies and the packs.
    await writeState(paths, {...before, state: 'verifying', step: 'rebuild', before: before.state})
    checkpoint('verifying:rebuild')
    await rebuildIntoStore(paths, blobs, report.manifest, opts.onProgress)
  }

  const m = report.manifest
  const slot: SlotName = before.current ? otherSlot(before.current.slot) : 'a'
  const kept = (r: DeviceState['staged']) => (r && r.slot !== slot ? r : undefined)
  const staging: DeviceState = {
    ...before,
    state: 'verifying',
    step: 'stage',
    staged: undefined,
    previous: kept(before.previous),
    before: settled({...before, staged: undefined}),
  }
  at.staging = staging
  await writeState(paths, staging)
  checkpoint('verifying:stage')
  await stageSlot(paths, slot, blobs, {manifest: m, bundleJson: report.bundleJson, signature, digest: report.manifestDigest, platform})
  await recordTime(paths, systemNow())
  await writeState(paths, {
    ...staging,
    state: 'staged',
    step: undefined,
    before: undefined,
    staged: {slot, name: m.name, version: m.version, digest: report.manifestDigest},
    lastError: undefined,
  })
  return {
    status: 'staged',
    name: m.name,
    version: m.version,
    digest: report.manifestDigest,
    slot,
    platform,
    signers: report.signers.map((s) => s.fingerprint),
    blobs: report.blobs,
    stored: {...blobs.written},
    bytes: report.bytes,
    ...(rotation ? {rotation} : {}),
  }
}
