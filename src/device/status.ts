import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {parseBundleJson} from '../bundle/format.js'
import {lockHolder} from '../store/pid-lock.js'
import {seenTime} from './clock.js'
import {readState} from './journal.js'
import {type DevicePaths, slotDir} from './paths.js'
import {requireDevice} from './presence.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState, DeviceStateName, SlotRelease} from './state-format.js'
import {readBadReleases} from './release-guards.js'
import {committedName, listFloors, listTrustedKeys, readFloor} from './trust-store.js'

/** A release with what its slot says about it: the K3s and Kubernetes versions it installs, when it was imported. */
export interface ReleaseStatus extends SlotRelease {
  k3s: string | null
  kubernetes: string | null
  importedAt: string | null
}

export interface DeviceStatus {
  state: DeviceStateName
  /** the step of an apply or import in flight, when one was interrupted */
  step: string | null
  /** a process holding the device lock now (an import, apply or recover running) */
  running: {pid: number} | null
  /** an import, apply or rollback that stopped half-way (killed, power cut): `device recover` finishes it */
  interrupted: {operation: 'import' | 'apply' | 'rollback'; step: string | null} | null
  current: ReleaseStatus | null
  previous: ReleaseStatus | null
  staged: ReleaseStatus | null
  /** the committed anti-rollback floor of the bundle name the device runs: bundles below it are refused */
  floor: string | null
  /** every bundle name's floor (name → version); "*" is a floor from before floors were kept per name */
  floors: Record<string, string>
  /** releases a rollback marked bad: import refuses them unless --force */
  badReleases: Array<{name: string | null; version: string | null; digest: string; reason: string | null; at: string}>
  trustedKeys: Array<{fingerprint: string; userIds: string[]}>
  /** signatures from this many trusted keys are required */
  threshold: number
  revokedKeys: string[]
  /** the highest time the device has seen (ISO 8601) */
  highestTimeSeen: string | null
  lastError: string | null
  /** the command to run next (or what to wait for) */
  next: string
  /** when the journal last changed (the time the device entered `state`) */
  updated: string
}

const OPERATION = {verifying: 'import', switching: 'apply', trial: 'apply', 'rolling-back': 'rollback'} as const

const lockOwner = (paths: DevicePaths) => lockHolder(paths.lock)

async function describeRelease(paths: DevicePaths, r: SlotRelease | undefined): Promise<ReleaseStatus | null> {
  if (!r) return null
  const release = await readSlotManifest(paths, r.slot).catch(() => undefined)
  const bundle = await readFile(join(slotDir(paths, r.slot), 'bundle.json'))
    .then((b) => parseBundleJson(b))
    .catch(() => undefined)
  const version = (kind: string) => bundle?.artifacts.find((a) => a.kind === kind && a.version)?.version ?? null
  const here = release?.digest === r.digest
  return {...r, k3s: here ? version('k3s') : null, kubernetes: here ? version('kubernetes') : null, importedAt: here ? release.importedAt : null}
}

function nextStep(paths: DevicePaths, s: DeviceState, o: {running?: number; interrupted: boolean; keys: number}): string {
  const root = paths.root === '/' ? '' : ` --root ${paths.root}`
  if (o.running) return `wait: process ${o.running} is running an ${s.state === 'verifying' ? 'import' : 'apply'}; "ferry device status${root}" again later`
  if (o.interrupted) return `ferry device recover${root}`
  if (o.keys === 0) return `ferry device trust add KEY.pub.asc${root}`
  if (s.state === 'staged' && s.staged) return `ferry device apply${root}`
  return `ferry device import BUNDLE${root}   (a .ferry.tar, a USB stick folder or a .parts.json)`
}

/** What the device runs, what it could roll back to, what is staged, what stopped half-way, what it trusts. Read-only, no lock. */
export async function deviceStatus(paths: DevicePaths): Promise<DeviceStatus> {
  await requireDevice(paths)
  const state = await readState(paths)
  const trust = await listTrustedKeys(paths)
  const seen = await seenTime(paths)
  const owner = committedName(state)
  const running = await lockOwner(paths)
  const inFlight = state.state in OPERATION ? OPERATION[state.state as keyof typeof OPERATION] : undefined
  const interrupted = inFlight && !running ? {operation: inFlight, step: state.step ?? null} : null
  return {
    state: state.state,
    step: state.step ?? null,
    running: running ? {pid: running} : null,
    interrupted,
    current: await describeRelease(paths, state.current),
    previous: await describeRelease(paths, state.previous),
    staged: await describeRelease(paths, state.staged),
    floor: (await readFloor(paths, owner ?? state.staged?.name ?? '', owner)) ?? null,
    floors: await listFloors(paths, owner),
    badReleases: (await readBadReleases(paths)).map((b) => ({name: b.name ?? null, version: b.version ?? null, digest: b.digest, reason: b.reason ?? null, at: b.at})),
    trustedKeys: trust.keys.map((k) => ({fingerprint: k.fingerprint, userIds: k.userIds})),
    threshold: trust.threshold,
    revokedKeys: trust.revoked,
    highestTimeSeen: seen ? seen.toISOString() : null,
    lastError: state.lastError ?? null,
    next: nextStep(paths, state, {running, interrupted: interrupted !== null, keys: trust.keys.length}),
    updated: state.updated,
  }
}
