import {statfs} from 'node:fs/promises'
import {dirname} from 'node:path'
import {FerryError} from '../errors.js'
import {formatBytes} from '../format.js'

/** Bytes free for an unprivileged writer on the filesystem holding `path` (or its nearest existing parent). */
export async function freeBytes(path: string): Promise<number | undefined> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = await statfs(p)
      // Some FUSE filesystems report 0 blocks: the size is then unknown, not zero.
      return s.blocks === 0 ? undefined : s.bavail * s.bsize
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw err
    }
  }
}

/** Refuses (exit 6) when `path`'s filesystem has less than `needed` bytes free, naming both figures. */
export async function ensureFreeSpace(path: string, needed: number, what: string): Promise<void> {
  const available = await freeBytes(path)
  if (available === undefined || available >= needed) return
  throw new FerryError(
    'io',
    'NO_SPACE',
    `not enough free space in ${path} for ${what}: needs ${formatBytes(needed)}, ${formatBytes(available)} available; free some space and try again`,
    {details: {needed, available}},
  )
}
