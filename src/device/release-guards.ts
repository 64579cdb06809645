import semver from 'semver'
import {usageError} from '../errors.js'
import type {DevicePaths} from './paths.js'
import type {DeviceState} from './state-format.js'
import {BadReleases, FloorFile, readTrustFile, trustFile, type VersionFloors, writeTrustFile} from './trust-format.js'

/**
 * The name whose floor a v1 floor.json (one floor for the whole device) is: the release last committed.
 * During a trial or rollback `current` is the release being tried, so the committed one is `previous`.
 */
export function committedName(state: DeviceState): string | undefined {
  return ['switching', 'trial', 'rolling-back'].includes(state.state) ? state.previous?.name : state.current?.name
}

/**
 * Every bundle name's committed floor. A v1 file's single floor is read as the floor of `owner` (the name
 * the device ran, see committedName); with no owner known it stands for every name, which refuses more,
 * never less.
 */
async function readFloors(paths: DevicePaths, owner: string | undefined): Promise<{floors: VersionFloors['floors']; any?: string}> {
  const file = await readTrustFile(trustFile.floor(paths), FloorFile)
  if (!file) return {floors: {}}
  if (file.schema === 'ferry.floor/v2') return {floors: file.floors}
  const entry = {version: file.version, raised: file.raised}
  return owner ? {floors: {[owner]: entry}} : {floors: {}, any: file.version}
}

/** Every bundle name's committed floor (name → version); a v1 floor with no owner known is listed as "*". */
export async function listFloors(paths: DevicePaths, owner: string | undefined): Promise<Record<string, string>> {
  const {floors, any} = await readFloors(paths, owner)
  return {...Object.fromEntries(Object.entries(floors).map(([name, f]) => [name, f.version])), ...(any ? {'*': any} : {})}
}

/** The committed anti-rollback floor of bundle `name` (a semantic version), or undefined before its first commit. */
export async function readFloor(paths: DevicePaths, name: string, owner?: string): Promise<string | undefined> {
  const {floors, any} = await readFloors(paths, owner)
  return floors[name]?.version ?? any
}

/**
 * Raises bundle `name`'s anti-rollback floor to `version` (call at commit). A floor only ever goes up: a
 * lower or equal version leaves it as it is. Writes the v2 format, carrying a v1 floor over to `owner`.
 * Returns the floor now in force for `name`.
 */
export async function raiseFloor(paths: DevicePaths, name: string, version: string, owner?: string): Promise<string> {
  if (!semver.valid(version)) throw usageError('BAD_VERSION', `cannot raise the version floor to "${version}": not a semantic version`)
  const {floors, any} = await readFloors(paths, owner ?? name)
  const current = floors[name]?.version ?? any
  if (current && !semver.gt(version, current)) return current
  const next: VersionFloors = {schema: 'ferry.floor/v2', floors: {...floors, [name]: {version, raised: new Date().toISOString()}}}
  await writeTrustFile(trustFile.floor(paths), next)
  return version
}

async function readBad(paths: DevicePaths): Promise<BadReleases> {
  return (await readTrustFile(trustFile.bad(paths), BadReleases)) ?? {schema: 'ferry.bad-releases/v1', releases: []}
}

/**
 * Marks a release bad (call at rollback) so import refuses it unless forced. `digest` is the sha256 of the
 * release's bundle.json (SlotRelease.digest); `about` is kept for people reading status. Idempotent.
 */
export async function markBad(paths: DevicePaths, digest: string, about: {name?: string; version?: string; reason?: string} = {}): Promise<void> {
  const bad = await readBad(paths)
  if (bad.releases.some((r) => r.digest === digest)) return
  bad.releases.push({digest, ...about, at: new Date().toISOString()})
  await writeTrustFile(trustFile.bad(paths), bad)
}

/** The bad-release record for this bundle.json digest, if a rollback marked it. */
export async function isBad(paths: DevicePaths, digest: string): Promise<BadReleases['releases'][number] | undefined> {
  return (await readBad(paths)).releases.find((r) => r.digest === digest)
}
