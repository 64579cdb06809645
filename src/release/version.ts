import semver from 'semver'
import {usageError} from '../errors.js'

/**
 * The version a new release gets. `version: auto` resolved to a time-based version (see
 * autoVersion); when a release in the folder is already at or above it (two runs in one minute, a
 * clock set back), the next patch above the highest is taken, so versions only ever rise. A fixed
 * version must itself be above every release, or devices would refuse it as a downgrade.
 */
export function chooseVersion(resolved: string, auto: boolean, highest: string | undefined): string {
  if (!highest || semver.gt(resolved, highest)) return resolved
  if (auto) return semver.inc(highest, 'patch')!
  throw usageError(
    'VERSION_NOT_ABOVE',
    `the manifest's version ${resolved} is not above the folder's last release ${highest}; raise metadata.version, or write "version: auto"`,
  )
}
