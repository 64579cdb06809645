import {ENTRY, OCI_LAYOUT_BYTES} from './format.js'
import {END_OF_ARCHIVE, entryLength, fileHeader} from './tar-writer.js'

export interface BlobFile {
  digest: string
  size: number
  /** where the bytes are on disk (the blob store, or a pack) */
  path: string
  /** where they start in that file; default 0 */
  offset?: number
  /**
   * the bytes are written into the archive at their place by someone else (a download) before
   * `ready` settles: the writer only reads them back to hash the archive
   */
  inPlace?: boolean
  /** the bytes were hashed against `digest` already (this process, or a sealed store blob): no need to hash them again */
  fresh?: boolean
  /**
   * settles when the blob is in place (it is still being fetched while the archive is written);
   * `fresh` is read after it
   */
  ready?: Promise<unknown>
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
  /** blobs that were hashed on their way in and matched */
  verified: string[]
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

export const hexOf = (digest: string) => digest.slice('sha256:'.length)

/** The blobs in archive order (by digest, each once) and where each one's bytes start in the archive. */
export function archiveLayout(entries: BundleEntries): {blobs: BlobFile[]; offsets: Map<string, number>} {
  let at = 0
  for (const [name, bytes] of smallEntries(entries)) at += entryLength(name, bytes.length)
  const blobs: BlobFile[] = []
  const offsets = new Map<string, number>()
  for (const blob of [...entries.blobs].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))) {
    if (offsets.has(blob.digest)) continue
    const name = ENTRY.blobPrefix + hexOf(blob.digest)
    offsets.set(blob.digest, at + fileHeader(name, blob.size).length)
    at += entryLength(name, blob.size)
    blobs.push(blob)
  }
  return {blobs, offsets}
}

export function smallEntries(entries: Omit<BundleEntries, 'blobs'>): Array<[string, Buffer]> {
  return [
    [ENTRY.manifest, entries.bundleJson],
    [ENTRY.signature, entries.signature],
    [ENTRY.layout, Buffer.from(OCI_LAYOUT_BYTES)],
    [ENTRY.index, entries.indexJson],
  ]
}

