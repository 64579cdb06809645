import {randomBytes} from 'node:crypto'
import {type FileHandle, mkdir, open, rename, rm} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'

// The one place where Ferry makes a change to its files survive a power cut (or a pulled stick). A change
// counts once its bytes and its folder entry reached the disk: file data is fsynced before it is renamed
// into place, and a folder is fsynced after every rename, new file, new folder or removal in it.

/** Flushes a file (already written and closed) or a folder to the disk. */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** fsync a folder so a rename, create or unlink in it survives a power cut. */
export const syncDir: (dir: string) => Promise<void> = fsyncFile

/** fsync each folder once, in the order given. */
export async function syncDirs(dirs: Iterable<string>): Promise<void> {
  for (const dir of new Set(dirs)) await syncDir(dir)
}

/**
 * Creates a folder and any missing parents, each made durable in its own parent (a folder a power cut
 * forgets takes everything renamed into it along). A folder already there costs one mkdir.
 */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, {recursive: true})
  if (first === undefined) return
  const made: string[] = []
  for (let d = resolve(dir); ; d = dirname(d)) {
    made.push(d)
    if (d === resolve(first) || d === dirname(d)) break
  }
  for (const d of made.reverse()) await syncDir(dirname(d))
}

/** Renames a file (already fsynced) into place and fsyncs the folder it landed in. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await rename(from, to)
  await syncDir(dirname(to))
}

/** Removes a file (absent is fine) and fsyncs its folder, so the removal survives a power cut. */
export async function unlinkDurable(path: string): Promise<void> {
  await rm(path, {force: true})
  await syncDir(dirname(path))
}

export interface AtomicWriteOptions {
  /** file mode (default 0644) */
  mode?: number
  /**
   * where the temp file is written (default: beside the target, as `.<name>.<rand>.tmp`): a folder on the
   * same file system that nobody scans, for targets in a folder another program watches
   */
  stagingDir?: string
  /**
   * false: skip both fsyncs, for a last word on a disk that fails them (the rename still replaces the old
   * file, so readers see the new one; a power cut may bring back the old)
   */
  sync?: boolean
}

/** A temp name for `target`, in `stagingDir` or beside it, unique to this call. */
export function tempPathFor(target: string, stagingDir = dirname(target)): string {
  return join(stagingDir, `.${basename(target)}.${randomBytes(4).toString('hex')}.tmp`)
}

/**
 * Writes a file so that a power cut leaves either the old content or the new: a temp file (beside it, or in
 * `stagingDir`) written by `fill`, fsync, rename over, fsync the folder. A failure leaves no temp file.
 */
export async function writeAtomicWith(path: string, fill: (fh: FileHandle, temp: string) => Promise<void>, options: AtomicWriteOptions = {}): Promise<void> {
  await mkdirDurable(options.stagingDir ?? dirname(path))
  const temp = tempPathFor(path, options.stagingDir)
  try {
    const fh = await open(temp, 'wx', options.mode ?? 0o644)
    try {
      await fill(fh, temp)
      if (options.sync !== false) await fh.sync()
    } finally {
      await fh.close()
    }
    await mkdirDurable(dirname(path))
    await rename(temp, path)
  } catch (err) {
    await rm(temp, {force: true})
    throw err
  }
  if (options.sync !== false) await syncDir(dirname(path))
}

/** Writes every chunk of `source` to the end of `fh`, in order (the temp file of writeAtomicWith). */
export async function writeAll(fh: FileHandle, source: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const chunk of source) {
    for (let off = 0; off < chunk.length; ) {
      const {bytesWritten} = await fh.write(chunk, off, chunk.length - off)
      if (bytesWritten === 0) throw Object.assign(new Error('the file system accepted no bytes'), {code: 'EIO'})
      off += bytesWritten
    }
  }
}

/** Writes a small file atomically and durably (see writeAtomicWith). */
export function writeFileAtomic(path: string, data: string | Buffer, options: number | AtomicWriteOptions = {}): Promise<void> {
  const opts = typeof options === 'number' ? {mode: options} : options
  return writeAtomicWith(path, (fh) => fh.writeFile(data), opts)
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
