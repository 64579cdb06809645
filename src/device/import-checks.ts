import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import semver from 'semver'
import {Header} from 'tar'
import {type BundleManifest, ENTRY} from '../bundle/format.js'
import type {BundleInput} from '../bundle/input.js'
import {parseBundleJson} from '../bundle/format.js'
import {sameContent} from '../bundle/same-version.js'
import type {BaseBlobs} from '../bundle/verify.js'
import {integrityError, trustError} from '../errors.js'
import type {DeviceBlobs} from './device-blobs.js'
import {type DevicePaths, type SlotName, slotDir} from './paths.js'
import {readSlotManifest} from './slot-manifest.js'
import type {DeviceState} from './state-format.js'
import {checkRotation, committedName, isBad, readFloor} from './trust-store.js'

/** Thrown inside verification to stop it: the device already runs this version (exit 0, nothing changes). */
export class AlreadyApplied extends Error {
  constructor(readonly digest: string) {
    super('already applied')
  }
}

export interface ReleaseCheck {
  rotation?: {keys: string[]; threshold: number}
  /** for a delta: the device's blobs standing in for its base */
  base?: BaseBlobs
}

const list = (xs: string[]) => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ', …' : ''}`

/** Finds the release a delta was made against among the device's slots and journal. */
async function hasRelease(paths: DevicePaths, state: DeviceState, digest: string): Promise<boolean> {
  if ([state.current, state.previous, state.staged].some((r) => r?.digest === digest)) return true
  for (const slot of ['a', 'b'] as const) {
    if ((await readSlotManifest(paths, slot).catch(() => undefined))?.digest === digest) return true
  }
  return false
}

/** Whether the slot's bundle.json describes the same release as `bundleJson` (only its times differ). */
async function runsContent(paths: DevicePaths, slot: SlotName, bundleJson: Buffer): Promise<boolean> {
  const running = await readFile(join(slotDir(paths, slot), ENTRY.manifest)).catch(() => undefined)
  return running !== undefined && sameContent(running, bundleJson)
}

/**
 * What the device refuses once bundle.json's signature verified, before a single blob is stored:
 * another platform, another bundle name than the one it runs (unless switching names), a version below
 * that name's committed floor (DOWNGRADE), the version it runs with other content, a release a rollback
 * marked bad (unless forced), a key rotation it could not adopt, a delta whose base it lacks. The release
 * it already runs stops verification with AlreadyApplied.
 */
export async function checkRelease(
  paths: DevicePaths,
  bundleJson: Buffer,
  ctx: {state: DeviceState; platform: string; force?: boolean; switchName?: boolean; blobs: DeviceBlobs},
): Promise<ReleaseCheck> {
  const m: BundleManifest = parseBundleJson(bundleJson)
  const digest = 'sha256:' + createHash('sha256').update(bundleJson).digest('hex')
  const what = `bundle ${m.name} ${m.version}`
  if (!m.platforms.includes(ctx.platform)) {
    throw trustError('WRONG_PLATFORM', `${what} is built for ${m.platforms.join(', ')}; this device is ${ctx.platform}`)
  }
  if (!semver.valid(m.version)) throw trustError('BAD_VERSION', `${what}: "${m.version}" is not a semantic version, so anti-rollback cannot order it`)
  const running = ctx.state.current
  if (running && running.name !== m.name && !ctx.switchName) {
    throw trustError(
      'BUNDLE_NAME_MISMATCH',
      `this device runs ${running.name}; this bundle is ${m.name} ${m.version}; import it with --switch-name only if this device is to become ${m.name}`,
    )
  }
  const floor = await readFloor(paths, m.name, committedName(ctx.state))
  if (floor && semver.lt(m.version, floor)) {
    throw trustError('DOWNGRADE', `${what} is older than ${floor}, the lowest version of ${m.name} this device accepts (anti-rollback); import a newer bundle`)
  }
  if (running && running.name === m.name && running.version === m.version) {
    if (running.digest === digest || (await runsContent(paths, running.slot, bundleJson))) throw new AlreadyApplied(digest)
    throw trustError(
      'SAME_VERSION_DIFFERENT_CONTENT',
      `${what}: same version, different content: the device runs ${m.version} with bundle.json ${running.digest}, this bundle's is ${digest}; build the change as a new version`,
    )
  }
  const bad = await isBad(paths, digest)
  if (bad && !ctx.force) {
    throw trustError(
      'RELEASE_BAD',
      `${what} was rolled back on this device${bad.reason ? ` (${bad.reason})` : ''} and is not retried automatically; import it with --force to try again`,
    )
  }
  const out: ReleaseCheck = {}
  if (m.rotation) out.rotation = {keys: await checkRotation(paths, m.rotation), threshold: m.rotation.threshold}
  if (m.base) {
    const omitted = m.omitted ?? []
    if (!(await hasRelease(paths, ctx.state, m.base.digest))) {
      const missing = omitted.filter((d) => !ctx.blobs.has(d))
      throw integrityError(
        'DELTA_BASE_MISSING',
        `${what} is a delta from ${m.base.name} ${m.base.version}, which this device does not have; ${missing.length} blob(s) missing${missing.length ? `: ${list(missing)}` : ''}; import the full bundle`,
        {missing},
      )
    }
    out.base = {digest: m.base.digest, has: (d) => ctx.blobs.has(d), content: (d) => ctx.blobs.content(d)}
  }
  return out
}

/**
 * Bytes an import may need on the device, from the bundle's (not yet verified) bundle.json: the archive's
 * size, less artifacts the store already holds, plus the slot's copies (binaries, files). The VM image and
 * airgap archives are hard links. Falls back to twice the archive size when bundle.json cannot be read.
 */
export async function peekSpaceNeeded(input: BundleInput, blobs: DeviceBlobs, platform: string): Promise<number> {
  const fallback = input.size * 2
  let head = Buffer.alloc(0)
  let want = 512
  for await (const chunk of input.open()) {
    head = Buffer.concat([head, chunk])
    if (head.length >= 512 && want === 512) {
      const h = new Header(head.subarray(0, 512))
      if (!h.cksumValid || h.path !== ENTRY.manifest || (h.size ?? 0) > 16 << 20) return fallback
      want = 512 + (h.size ?? 0)
    }
    if (head.length >= want) break
  }
  if (head.length < want) return fallback
  let m: BundleManifest
  try {
    m = parseBundleJson(head.subarray(512, want))
  } catch {
    return fallback
  }
  let needed = input.size + (1 << 20)
  for (const a of m.artifacts) {
    // a chunked artifact of a delta is not in the archive: it is rebuilt into the store
    if (a.delta) needed += blobs.has(a.digest) ? 0 : a.size
    else if (blobs.has(a.digest)) needed -= a.size
    if (a.kind === 'image' || !a.dest || (a.platform && a.platform !== platform)) continue
    if (!a.dest.startsWith('vm/') && !a.dest.startsWith('images/')) needed += a.size
  }
  return Math.max(needed, 1 << 20)
}
