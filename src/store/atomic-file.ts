import {randomBytes} from 'node:crypto'
import {type FileHandle, mkdir, open, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

/** Flushes a file (already written and closed) or a folder to the disk. */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** fsync a folder so a rename in it survives a power cut (or a pulled stick). */
export const syncDir: (dir: string) => Promise<void> = fsyncFile

/**
 * Writes a small file so that a power cut leaves either the old content or the
 * new: a temp file beside it, fsync, rename over, fsync the folder.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), {recursive: true})
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fh = await open(temp, 'wx', mode)
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(temp, path)
  } catch (err) {
    await rm(temp, {force: true})
    throw err
  }
  await syncDir(dirname(path))
}

/** Writes all of `bytes` at `position`, however many calls the file system needs; a write that takes nothing is EIO. */
export async function writeFullyAt(fh: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    const {bytesWritten} = await fh.write(bytes, done, bytes.length - done, position + done)
    if (bytesWritten === 0) throw Object.assign(new Error('the file system accepted no bytes'), {code: 'EIO'})
    done += bytesWritten
  }
}

/** Errors of `link` that say a hard link cannot be made here (another file system, or one without links): copy instead. */
const NO_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS'])

export function cannotLink(err: unknown): boolean {
  return NO_LINK.has((err as NodeJS.ErrnoException).code ?? '')
}
