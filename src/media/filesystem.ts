import {readFile, realpath, stat, statfs} from 'node:fs/promises'
import {usageError} from '../errors.js'

/** The largest file FAT32 can hold: 4 GiB − 1 byte. */
export const FAT_MAX_FILE = 2 ** 32 - 1
/** Part size used on FAT32 when none is given: a round figure below the limit. */
export const FAT_PART_SIZE = 4095 * 1024 * 1024

export interface MediaFilesystem {
  mountPoint: string
  /** the type from /proc/self/mountinfo, e.g. vfat, fuse.fusefat, exfat, ext4, fuseblk */
  type: string
  /** true when files must stay below 4 GiB: FAT, or a type that cannot be told apart from it */
  fatLimit: boolean
  /** bytes free for us, when the filesystem reports them (fusefat reports 0 blocks: unknown) */
  free?: number
}

const FAT_TYPES = new Set(['vfat', 'msdos', 'fat', 'umsdos', 'fuse.fusefat', 'fuse.vfat', 'fusefat'])
// fuseblk is whatever FUSE driver mounted a block device (exfat-fuse, ntfs-3g, fusefat): treat it as FAT, since splitting is harmless.
const UNKNOWN_TYPES = new Set(['fuseblk', 'fuse'])

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))

interface Mount {
  mountPoint: string
  type: string
}

export function parseMountInfo(text: string): Mount[] {
  const mounts: Mount[] = []
  for (const line of text.split('\n')) {
    const fields = line.split(' ')
    const dash = fields.indexOf('-')
    if (fields.length < 5 || dash < 0 || dash + 1 >= fields.length) continue
    mounts.push({mountPoint: unescape(fields[4]), type: fields[dash + 1]})
  }
  return mounts
}

/** The mount holding `path`: the longest mount point that is a prefix of its real path (later mounts win). */
export function mountOf(path: string, mounts: Mount[]): Mount | undefined {
  let best: Mount | undefined
  for (const m of mounts) {
    const inside = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(m.mountPoint + '/')
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m
  }
  return best
}

/**
 * Finds what filesystem a folder lives on. statfs is not enough: fusefat
 * reports `fuseblk` and 0 blocks, so the type comes from /proc/self/mountinfo
 * and free space only when statfs knows it.
 */
export async function detectFilesystem(dir: string): Promise<MediaFilesystem> {
  const real = await realpath(dir).catch(() => {
    throw usageError('NOT_FOUND', `${dir}: no such folder; mount the stick and give its folder`)
  })
  if (!(await stat(real)).isDirectory()) throw usageError('NOT_A_FOLDER', `${dir} is a file, not a folder: give the folder where the stick is mounted (e.g. /media/usb)`)
  const info = await statfs(real)
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8').catch(() => ''))
  const mount = mountOf(real, mounts) ?? {mountPoint: '/', type: 'unknown'}
  const fatLimit = FAT_TYPES.has(mount.type) || UNKNOWN_TYPES.has(mount.type)
  const free = info.blocks > 0 ? Number(info.bavail) * Number(info.bsize) : undefined
  return {mountPoint: mount.mountPoint, type: mount.type, fatLimit, ...(free === undefined ? {} : {free})}
}
