import semver from 'semver'
import {usageError} from '../errors.js'
import type {DevicePaths} from './paths.js'
import {BadReleases, readTrustFile, trustFile, VersionFloor, writeTrustFile} from './trust-format.js'

/** The committed anti-rollback floor (a semantic version), or undefined before the first commit. */
export async function readFloor(paths: DevicePaths): Promise<string | undefined> {
  return (await readTrustFile(trustFile.floor(paths), VersionFloor))?.version
}

/**
 * Raises the anti-rollback floor to `version` (call at commit). The floor only ever goes up: a lower or equal
 * version leaves it as it is. Returns the floor now in force.
 */
export async function raiseFloor(paths: DevicePaths, version: string): Promise<string> {
  if (!semver.valid(version)) throw usageError('BAD_VERSION', `cannot raise the version floor to "${version}": not a semantic version`)
  const current = await readFloor(paths)
  if (current && !semver.gt(version, current)) return current
  await writeTrustFile(trustFile.floor(paths), {schema: 'ferry.floor/v1', version, raised: new Date().toISOString()} satisfies VersionFloor)
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
