import {createHash, randomBytes} from 'node:crypto'
import {type FileHandle, mkdir, open, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {syncDir} from '../store/atomic-file.js'
import {asLocalIoError, integrityError} from '../ui/errors.js'
import type {ProgressListener} from '../ui/progress.js'
import {ENTRY, OCI_LAYOUT_BYTES} from './format.js'
import {END_OF_ARCHIVE, entryLength, fileHeader, padding} from './tar-writer.js'

export interface BlobFile {
  digest: string
  size: number
  /** where the bytes are on disk (the blob store) */
  path: string
}

export interface BundleEntries {
  bundleJson: Buffer
  signature: Buffer
  indexJson: Buffer
  blobs: BlobFile[]
}

export interface WrittenBundle {
  path: string
  sha256: string
  size: number
}

/** Total archive size, known before writing: used for free-space checks and progress. */
export function archiveSize(entries: BundleEntries): number {
  let size = entryLength(ENTRY.manifest, entries.bundleJson.length)
  size += entryLength(ENTRY.signature, entries.signature.length)
  size += entryLength(ENTRY.layout, Buffer.byteLength(OCI_LAYOUT_BYTES))
  size += entryLength(ENTRY.index, entries.indexJson.length)
  for (const b of entries.blobs) size += entryLength(ENTRY.blobPrefix + hexOf(b.digest), b.size)
  return size + END_OF_ARCHIVE.length
}

const hexOf = (digest: string) => digest.slice('sha256:'.length)

const CHUNK = 4 << 20

/**
 * Copies entries into the archive through two reused buffers: the next chunk is read and
 * hashed while the previous one is being written, and no per-chunk garbage is made.
 */
class ArchiveWriter {
  private readonly buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)]
  private turn = 0
  private pending: Promise<unknown> = Promise.resolve()
  readonly hash = createHash('sha256')
  written = 0

  constructor(
    private readonly out: FileHandle,
    private readonly onChunk: () => void,
  ) {}

  async put(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return
    this.hash.update(bytes)
    await this.pending
    const copy = Buffer.from(bytes)
    this.pending = this.track(this.out.write(copy, 0, copy.length, this.written))
    this.written += copy.length
  }

  async copyFile(blob: BlobFile): Promise<void> {
    const input = await open(blob.path, 'r')
    try {
      let copied = 0
      while (true) {
        const buffer = this.buffers[this.turn]
        const {bytesRead} = await input.read(buffer, 0, CHUNK, copied)
        if (bytesRead === 0) break
        copied += bytesRead
        if (copied > blob.size) break
        const view = buffer.subarray(0, bytesRead)
        this.hash.update(view)
        await this.pending
        this.pending = this.track(this.out.write(view, 0, bytesRead, this.written))
        this.written += bytesRead
        this.turn ^= 1
        this.onChunk()
      }
      // The store is a cache another process could touch: never write an entry whose length is wrong.
      if (copied !== blob.size) {
        throw integrityError('STORE_CHANGED', `blob ${blob.digest} in the store is ${copied} bytes, expected ${blob.size}; remove it from the store and build again`)
      }
    } finally {
      await input.close()
    }
  }

  /** A write is awaited one step later; mark its failure handled now so it surfaces there, not as a crash. */
  private track<T>(write: Promise<T>): Promise<T> {
    write.catch(() => {})
    return write
  }

  async finish(): Promise<void> {
    await this.pending
  }
}

async function writeEntries(writer: ArchiveWriter, entries: BundleEntries): Promise<void> {
  const small: Array<[string, Buffer]> = [
    [ENTRY.manifest, entries.bundleJson],
    [ENTRY.signature, entries.signature],
    [ENTRY.layout, Buffer.from(OCI_LAYOUT_BYTES)],
    [ENTRY.index, entries.indexJson],
  ]
  for (const [name, bytes] of small) {
    await writer.put(Buffer.concat([fileHeader(name, bytes.length), bytes, padding(bytes.length)]))
  }
  const blobs = [...entries.blobs].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
  let previous = ''
  for (const blob of blobs) {
    if (blob.digest === previous) continue
    previous = blob.digest
    await writer.put(fileHeader(ENTRY.blobPrefix + hexOf(blob.digest), blob.size))
    await writer.copyFile(blob)
    await writer.put(padding(blob.size))
  }
  await writer.put(END_OF_ARCHIVE)
  await writer.finish()
}

/**
 * Writes the bundle archive to `target` atomically: a temp file in the same
 * folder, hashed while written, fsynced, then renamed. A failed or killed
 * write leaves no file with the final name.
 */
export async function writeBundleArchive(target: string, entries: BundleEntries, onProgress?: ProgressListener): Promise<WrittenBundle> {
  const dir = dirname(target)
  await mkdir(dir, {recursive: true})
  const temp = join(dir, `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`)
  const total = archiveSize(entries)
  let lastReport = 0
  let writer: ArchiveWriter | undefined
  try {
    const out = await open(temp, 'wx', 0o644)
    try {
      writer = new ArchiveWriter(out, () => {
        if (onProgress && writer!.written - lastReport >= 8 << 20) {
          lastReport = writer!.written
          onProgress({phase: 'write', item: basename(target), done: writer!.written, total})
        }
      })
      await writeEntries(writer, entries)
      await out.sync()
    } finally {
      await out.close()
    }
    await rename(temp, target)
    await syncDir(dir)
  } catch (err) {
    await rm(temp, {force: true})
    throw asLocalIoError(err, `writing ${target}`)
  }
  onProgress?.({phase: 'write', item: basename(target), done: writer.written, total})
  return {path: target, sha256: writer.hash.digest('hex'), size: writer.written}
}
