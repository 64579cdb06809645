import {randomBytes} from 'node:crypto'
import {type FileHandle, open, readdir, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {mkdirDurable, renameDurable} from '../store/atomic-file.js'
import {asLocalIoError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {archiveLayout, archiveSize, type BundleEntries, hexOf, smallEntries, type WrittenBundle} from './archive-entries.js'
import {ArchiveWriter} from './archive-writer.js'
import {ENTRY} from './format.js'
import {END_OF_ARCHIVE, fileHeader, padding} from './tar-writer.js'

export {archiveLayout, type BlobFile, type BundleEntries, type WrittenBundle} from './archive-entries.js'

async function writeEntries(writer: ArchiveWriter, entries: BundleEntries): Promise<void> {
  for (const [name, bytes] of smallEntries(entries)) {
    await writer.put(Buffer.concat([fileHeader(name, bytes.length), bytes, padding(bytes.length)]))
  }
  const {blobs, offsets} = archiveLayout(entries)
  for (const blob of blobs) {
    await writer.put(fileHeader(ENTRY.blobPrefix + hexOf(blob.digest), blob.size))
    if (blob.inPlace) {
      if (writer.written + writer.pending !== offsets.get(blob.digest)) throw new Error(`archive layout: ${blob.digest} is not where it was planned`)
      await writer.hashInPlace(blob)
    } else {
      await writer.copyFile(blob)
    }
    await writer.put(padding(blob.size))
  }
  await writer.put(END_OF_ARCHIVE)
}

/**
 * Removes temp files a killed build of `target` left behind. Call it holding the build lock of
 * `target`: then no live build owns them.
 */
export async function removeAbandonedPartials(target: string): Promise<void> {
  const prefix = `.${basename(target)}.`
  const names = await readdir(dirname(target)).catch(() => [] as string[])
  for (const name of names) {
    if (name.startsWith(prefix) && name.endsWith('.partial')) await rm(join(dirname(target), name), {force: true})
  }
}

export interface ArchiveHooks {
  /** the temp file was opened: blobs marked `inPlace` may be written into it from now on */
  onOpen?: (archive: FileHandle, path: string) => void
  /** the write failed; the temp file is still open and about to be removed */
  onFail?: (archive: FileHandle) => Promise<void>
}

/**
 * Writes the bundle archive to `target` atomically: a temp file in the same
 * folder, hashed while written, fsynced, then renamed. A failed or killed
 * write leaves no file with the final name.
 */
export async function writeBundleArchive(target: string, entries: BundleEntries, onProgress?: ProgressListener, hooks: ArchiveHooks = {}): Promise<WrittenBundle> {
  const dir = dirname(target)
  await mkdirDurable(dir)
  const temp = join(dir, `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`)
  const total = archiveSize(entries)
  let lastReport = 0
  let writer: ArchiveWriter | undefined
  let sha256: string
  try {
    // Read back too: blobs downloaded into their place are hashed from here.
    const out = await open(temp, 'wx+', 0o644)
    hooks.onOpen?.(out, temp)
    try {
      writer = new ArchiveWriter(out, () => {
        if (onProgress && writer!.written - lastReport >= 8 << 20) {
          lastReport = writer!.written
          onProgress({phase: 'write', item: basename(target), done: writer!.written, total})
        }
      })
      // the phase starts now (its rate is measured from here), not at the first 8 MiB
      onProgress?.({phase: 'write', item: basename(target), done: 0, total})
      try {
        try {
          await writeEntries(writer, entries)
        } catch (err) {
          await writer.abandon()
          throw err
        }
        sha256 = (await writer.finish()).slice('sha256:'.length)
        await out.sync()
      } catch (err) {
        // before the temp file goes: the caller may keep what is good in it
        await hooks.onFail?.(out).catch(() => undefined)
        throw err
      }
    } finally {
      await out.close()
    }
    await renameDurable(temp, target)
  } catch (err) {
    await rm(temp, {force: true})
    throw asLocalIoError(err, `writing ${target}`)
  }
  onProgress?.({phase: 'write', item: basename(target), done: writer.written, total})
  return {path: target, sha256, size: writer.written, verified: writer.verified}
}
