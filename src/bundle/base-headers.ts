// A base bundle read by seeking: bundle.json, the tar headers, and the chunk index blobs it names.
// What `bundle build --since` needs of a base, without reading the gigabytes of its images.
import {ChunkIndex} from '../chunks/index-format.js'
import {readFully} from '../chunks/sources.js'
import {integrityError} from '../errors.js'
import {scanTar} from '../sources/oci/tar-index.js'
import {sha256Of} from '../store/hashing.js'
import {openArchiveRegion} from './archive-source.js'
import type {BaseIndexes} from './chunked.js'
import {ENTRY, parseBundleJson, type BundleArtifact, type BundleManifest} from './format.js'
import type {BundleInput} from './input.js'

export interface BaseHeaders {
  manifest: BundleManifest
  bundleJson: Buffer
  /** every blob the archive carries, with where its bytes start */
  offsets: Map<string, number>
  chunkIndexes: BaseIndexes
}

/** Chunk index blobs above this size are not an index a bundle could carry (about 1.7 M chunks). */
const INDEX_MAX = 64 << 20

/**
 * Reads a base bundle (file, stick folder or parts.json) by seeking over its tar headers: only
 * bundle.json and the chunk index blobs it names are read, each index checked against its digest
 * (which bundle.json, signed, names). Nothing else is hashed: the delta built from it names the
 * base's bundle.json digest, and devices check the rest.
 */
export async function readBaseHeaders(input: BundleInput): Promise<BaseHeaders> {
  const source = await openArchiveRegion(input.label, 0, input.size)
  try {
    const readAt = async (length: number, position: number) => {
      const bytes = Buffer.alloc(length)
      if ((await readFully(source, bytes, 0, length, position)) !== length) throw integrityError('TRUNCATED', `${input.label}: the archive ends in the middle of an entry`)
      return bytes
    }
    const members = await scanTar(readAt, input.size, input.label)
    const [firstPath, first] = members.entries().next().value ?? []
    if (firstPath !== ENTRY.manifest || !first) throw integrityError('NOT_A_BUNDLE', `${input.label} is not a Ferry bundle (no bundle.json first); give the older .ferry.tar or its stick folder`)
    if (first.size > 16 << 20) throw integrityError('ENTRY_TOO_LARGE', `${ENTRY.manifest} is ${first.size} bytes, above the limit of ${16 << 20}`)
    const bundleJson = await readAt(first.size, first.offset)
    const manifest = parseBundleJson(bundleJson)
    const offsets = new Map<string, number>()
    const sizes = new Map<string, number>()
    for (const [path, m] of members) {
      if (!path.startsWith(ENTRY.blobPrefix)) continue
      const digest = `sha256:${path.slice(ENTRY.blobPrefix.length)}`
      offsets.set(digest, m.offset)
      sizes.set(digest, m.size)
    }
    const indexed = new Map<string, BundleArtifact[]>()
    for (const a of manifest.artifacts) if (a.chunks && sizes.has(a.chunks.index)) indexed.set(a.chunks.index, [...(indexed.get(a.chunks.index) ?? []), a])
    const chunkIndexes: BaseIndexes = new Map()
    for (const [digest, describes] of indexed) {
      const size = sizes.get(digest)!
      if (size > INDEX_MAX) throw integrityError('ENTRY_TOO_LARGE', `the chunk index of ${describes[0].name} is ${size} bytes, above the limit of ${INDEX_MAX}`)
      const bytes = await readAt(size, offsets.get(digest)!)
      if (sha256Of(bytes) !== digest) throw integrityError('BASE_CORRUPT', `the base ${input.label} is damaged: the chunk index of ${describes[0].name} (${digest}) does not match its content`)
      const index = ChunkIndex.parse(bytes, describes[0].name)
      for (const a of describes) chunkIndexes.set(a.digest, {digest, index})
    }
    return {manifest, bundleJson, offsets, chunkIndexes}
  } finally {
    await source.close()
  }
}
