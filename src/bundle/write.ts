import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, open, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {pipeline} from 'node:stream/promises'
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

async function* archiveChunks(entries: BundleEntries): AsyncGenerator<Buffer> {
  const small: Array<[string, Buffer]> = [
    [ENTRY.manifest, entries.bundleJson],
    [ENTRY.signature, entries.signature],
    [ENTRY.layout, Buffer.from(OCI_LAYOUT_BYTES)],
    [ENTRY.index, entries.indexJson],
  ]
  for (const [name, bytes] of small) {
    yield fileHeader(name, bytes.length)
    yield bytes
    yield padding(bytes.length)
  }
  const blobs = [...entries.blobs].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
  let previous = ''
  for (const blob of blobs) {
    if (blob.digest === previous) continue
    previous = blob.digest
    yield fileHeader(ENTRY.blobPrefix + hexOf(blob.digest), blob.size)
    let copied = 0
    for await (const chunk of createReadStream(blob.path, {highWaterMark: 1 << 20}) as AsyncIterable<Buffer>) {
      copied += chunk.length
      if (copied > blob.size) break
      yield chunk
    }
    // The store is a cache another process could touch: never write an entry whose length is wrong.
    if (copied !== blob.size) throw integrityError('STORE_CHANGED', `blob ${blob.digest} in the store is ${copied} bytes, expected ${blob.size}; remove it from the store and build again`)
    yield padding(blob.size)
  }
  yield END_OF_ARCHIVE
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
  const hash = createHash('sha256')
  let written = 0
  let lastReport = 0
  async function* hashed(source: AsyncGenerator<Buffer>) {
    for await (const chunk of source) {
      hash.update(chunk)
      written += chunk.length
      if (onProgress && written - lastReport >= 8 << 20) {
        lastReport = written
        onProgress({phase: 'write', item: basename(target), done: written, total})
      }
      yield chunk
    }
  }
  try {
    await pipeline(archiveChunks(entries), hashed, createWriteStream(temp, {flags: 'wx', mode: 0o644, highWaterMark: 1 << 20}))
    const fh = await open(temp, 'r+')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(temp, target)
    await syncDir(dir)
  } catch (err) {
    await rm(temp, {force: true})
    throw asLocalIoError(err, `writing ${target}`)
  }
  onProgress?.({phase: 'write', item: basename(target), done: written, total})
  return {path: target, sha256: hash.digest('hex'), size: written}
}

/** fsync a folder so a rename in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
