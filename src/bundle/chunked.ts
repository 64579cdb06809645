// Chunked artifacts in a build: each one's chunk index (kept in the store), and in a delta the pack
// of chunks its base lacks, which then stands in for the artifact (see docs/bundle-format.md).
import {BaseChunks, summarisePack} from '../chunks/plan.js'
import {packBytes} from '../chunks/pack-writer.js'
import {openFileSource} from '../chunks/sources.js'
import {cachedIndex, indexStoredArtifact, keepIndex, type StoredIndex} from '../chunks/store-index.js'
import {ChunkIndex} from '../chunks/index-format.js'
import {CHUNK_PARAMS} from '../chunks/params.js'
import type {LockedArtifact} from '../manifest/lock-format.js'
import {fetchToStore} from '../sources/http.js'
import {mapPool} from '../sources/pool.js'
import type {BlobStore} from '../store/blob-store.js'
import {usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import type {BundleArtifact} from './format.js'
import type {BlobFile} from './write.js'

/** A delta carries an artifact as chunks only when its pack is at most this share of the artifact. */
export const CHUNKED_MAX_SHARE = 0.9

/** What a base offers a chunked delta: its chunked artifacts' indexes, by artifact digest. */
export type BaseIndexes = Map<string, {digest: string; index: ChunkIndex}>

/** Per chunked artifact, for `bundle build --json`, inspect and diff. */
export interface ChunkReport {
  name: string
  /** chunks: rebuilt from a pack; whole: carried whole; omitted: the base has it */
  carried: 'chunks' | 'whole' | 'omitted'
  chunks: number
  reused: number
  /** bytes this bundle carries for the artifact */
  newBytes: number
}

export interface ChunkedPlan {
  /** bundle.json's artifacts with `chunks` and `delta` filled in */
  artifacts: BundleArtifact[]
  /** index and pack blobs to add, all in the store */
  blobs: BlobFile[]
  /** artifacts the bundle does not carry: rebuilt from their pack */
  rebuilt: Set<string>
  /** index blobs of unchanged artifacts (the base carries them) */
  omitted: string[]
  report: ChunkReport[]
  /** the indexes of the artifacts chunked here, by artifact digest */
  indexes: BaseIndexes
}

/** VM images unless they opted out, and files that asked for it. */
export const isChunked = (a: {kind: string; delta?: 'chunks' | 'whole'}) => a.delta === 'chunks' || (a.kind === 'vm' && a.delta !== 'whole')

export interface ChunkedOptions {
  store: BlobStore
  /** the base of a delta, when it offers chunk indexes; `has` tells what it carries */
  base?: {has(digest: string): boolean; indexes?: BaseIndexes; manifest?: {artifacts: BundleArtifact[]}}
  /** fetch artifacts the store lacks (a build); without it, they must be in the store (a base known by its lock) */
  fetch?: boolean
  concurrency?: number
  onProgress?: ProgressListener
}

const blobFile = (store: BlobStore, digest: string, size: number): BlobFile => ({digest, size, path: store.pathOf(digest)})

async function indexOf(a: LockedArtifact, options: ChunkedOptions): Promise<StoredIndex> {
  const store = options.store
  const digest = `sha256:${a.sha256}`
  const kept = await cachedIndex(store, digest, a.name)
  if (kept) return kept
  if (!(await store.locate(digest))) {
    if (!options.fetch) throw usageError('BASE_NOT_IN_STORE', `${a.name} is not in the store, so its chunk index cannot be made from the lock: give the base bundle itself`)
    // cut into chunks on the hash thread as it downloads: the file is not read again to index it
    const got = await fetchToStore(store, a.url, {sha256: a.sha256, size: a.size}, {item: a.name, onProgress: options.onProgress, chunk: CHUNK_PARAMS})
    if (got.chunks) return keepIndex(store, digest, ChunkIndex.fromRecords(CHUNK_PARAMS, got.size, got.chunks))
  }
  return indexStoredArtifact(store, digest, a.name)
}

/** Writes the pack of `next` against the base into the store; its digest and size. */
async function writePack(store: BlobStore, a: LockedArtifact, index: ChunkIndex, table: BaseChunks): Promise<{digest: string; size: number}> {
  const at = (await store.locate(`sha256:${a.sha256}`))!
  const source = await openFileSource(at.path, at.offset, at.size)
  try {
    return await store.ingest(packBytes(index, table, source, a.name))
  } finally {
    await source.close()
  }
}

/**
 * Fills in `chunks` for every chunked artifact (its index, made once and kept in the store) and,
 * against a base that offers indexes, turns each changed one into a pack of the chunks the base
 * lacks, unless that saves under 10%. Artifacts the base carries keep the base's index entry.
 */
export async function planChunked(lock: {artifacts: LockedArtifact[]}, artifacts: BundleArtifact[], options: ChunkedOptions): Promise<ChunkedPlan> {
  const store = options.store
  const base = options.base
  const plan: ChunkedPlan = {artifacts: [...artifacts], blobs: [], rebuilt: new Set(), omitted: [], report: [], indexes: new Map()}
  // in a fixed order (by index digest, as a base archive holds them), so two builds name the same base list
  const order = (x: [string, {digest: string}], y: [string, {digest: string}]) => (x[1].digest < y[1].digest ? -1 : x[1].digest > y[1].digest ? 1 : x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)
  const baseEntries = base?.indexes ? [...base.indexes.entries()].sort(order) : []
  const table = baseEntries.length ? new BaseChunks(baseEntries.map(([, v]) => v.index)) : undefined
  const baseList = baseEntries.map(([digest, v]) => ({digest, index: v.digest}))
  const baseEntry = (digest: string) => base?.manifest?.artifacts.find((b) => b.digest === digest && b.chunks)
  const work = lock.artifacts.map((a, i) => ({a, i})).filter(({a}) => isChunked(a))
  await mapPool(work, options.concurrency ?? 4, async ({a, i}) => {
    const digest = `sha256:${a.sha256}`
    if (base?.has(digest)) {
      const chunks = baseEntry(digest)?.chunks
      if (chunks) {
        plan.artifacts[i] = {...plan.artifacts[i], chunks}
        plan.omitted.push(chunks.index)
      }
      plan.report.push({name: a.name, carried: 'omitted', chunks: chunks?.count ?? 0, reused: chunks?.count ?? 0, newBytes: 0})
      return
    }
    const stored = await indexOf(a, options)
    const chunks = {index: stored.digest, size: stored.size, count: stored.index.count}
    plan.artifacts[i] = {...plan.artifacts[i], chunks}
    plan.blobs.push(blobFile(store, stored.digest, stored.size))
    plan.indexes.set(digest, {digest: stored.digest, index: stored.index})
    const summary = table && summarisePack(stored.index, table)
    if (!summary || summary.packSize > CHUNKED_MAX_SHARE * a.size) {
      plan.report.push({name: a.name, carried: 'whole', chunks: stored.index.count, reused: 0, newBytes: a.size})
      return
    }
    const pack = await writePack(store, a, stored.index, table!)
    plan.artifacts[i] = {...plan.artifacts[i], delta: {index: stored.digest, pack: pack.digest, packSize: pack.size, reused: summary.reused, base: baseList}}
    plan.blobs.push(blobFile(store, pack.digest, pack.size))
    plan.rebuilt.add(digest)
    plan.report.push({name: a.name, carried: 'chunks', chunks: summary.chunks, reused: summary.reused, newBytes: pack.size})
  })
  plan.omitted.sort()
  plan.report.sort((x, y) => (x.name < y.name ? -1 : 1))
  return plan
}
