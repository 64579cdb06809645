import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {writeFileAtomic} from '../store/atomic-file.js'
import type {BlobStore} from '../store/blob-store.js'
import {digestHex, isDigest} from '../store/hashing.js'
import {indexFile} from './chunker.js'
import {ChunkIndex} from './index-format.js'
import {CHUNK_PARAMS, sameParams} from './params.js'

/** A chunk index kept in the build store as a blob, with its digest and size. */
export interface StoredIndex {
  digest: string
  size: number
  index: ChunkIndex
}

/** `<store>/chunk-indexes/<artifact hex>` holds the digest of that artifact's index blob. */
const refPath = (store: BlobStore, artifact: string) => join(store.root, 'chunk-indexes', digestHex(artifact))

/** Reads a stored index blob and checks it is one (a damaged store entry is simply not used). */
async function readIndexBlob(store: BlobStore, digest: string, what: string): Promise<StoredIndex | undefined> {
  const at = await store.locate(digest)
  if (!at || at.size > 64 << 20) return undefined
  const bytes = await store.readSmall(digest, at.size)
  if (!bytes) return undefined
  try {
    return {digest, size: bytes.length, index: ChunkIndex.parse(bytes, what)}
  } catch {
    return undefined
  }
}

/** The index the store keeps for an artifact, made with today's parameters; undefined when none is kept. */
export async function cachedIndex(store: BlobStore, artifact: string, what: string): Promise<StoredIndex | undefined> {
  const ref = (await readFile(refPath(store, artifact), 'utf8').catch(() => '')).trim()
  if (!isDigest(ref)) return undefined
  const found = await readIndexBlob(store, ref, what)
  return found && sameParams(found.index.params, CHUNK_PARAMS) ? found : undefined
}

/** Puts an index into the store as a blob and remembers it for the artifact. */
export async function keepIndex(store: BlobStore, artifact: string, index: ChunkIndex): Promise<StoredIndex> {
  const bytes = index.serialise()
  const info = await store.ingest(Readable.from([bytes]))
  await writeFileAtomic(refPath(store, artifact), `${info.digest}\n`)
  return {digest: info.digest, size: info.size, index}
}

/**
 * The index of an artifact the store holds (loose or in a pack): the kept one, else chunked now on
 * the chunk worker and kept. `what` names it in errors.
 */
export async function indexStoredArtifact(store: BlobStore, artifact: string, what: string): Promise<StoredIndex> {
  const kept = await cachedIndex(store, artifact, what)
  if (kept) return kept
  const at = await store.locate(artifact)
  if (!at) throw new Error(`${what}: ${artifact} is not in the store`)
  const index = await indexFile(at.path, {start: at.offset, length: at.size})
  if (index.size !== at.size) throw new Error(`${what}: read ${index.size} of ${at.size} bytes while chunking`)
  return keepIndex(store, artifact, index)
}
