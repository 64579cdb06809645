import {stat} from 'node:fs/promises'
import {asLocalIoError, usageError} from '../errors.js'
import type {DevicePaths} from './paths.js'

/**
 * Refuses a `--root` that holds no Ferry state (no <root>/var/lib/ferry): a mistyped root would otherwise
 * read as an idle device, and an apply would create the folder there. A device gets that folder when it is
 * provisioned (`ferry device trust add`).
 */
export async function requireDevice(paths: DevicePaths): Promise<void> {
  const info = await stat(paths.base).catch((err: NodeJS.ErrnoException) => {
    // A folder this user may not look into is there all the same: say so (and how to get in), not "no state".
    if (err.code === 'EACCES' || err.code === 'EPERM') throw asLocalIoError(err, `cannot read ${paths.base}`)
    return undefined
  })
  if (info?.isDirectory()) return
  throw usageError(
    'NOT_A_DEVICE',
    `${paths.root} holds no Ferry state (no ${paths.base}); give the device's --root, or provision this one with "ferry device trust add KEY.pub.asc${paths.root === '/' ? '' : ` --root ${paths.root}`}"`,
  )
}
