// Rebuilding a delta's chunked artifacts from their pack and the base's copies: shared by
// `bundle verify --base` (sources in two archives) and device import (sources in the device store).
import {ChunkIndex} from '../chunks/index-format.js'
import {BaseChunks} from '../chunks/plan.js'
import {rebuildChunked} from '../chunks/rebuild.js'
import {type RandomSource, readFully} from '../chunks/sources.js'
import {integrityError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {sha256Of} from '../store/hashing.js'
import type {BundleArtifact, BundleManifest} from './format.js'
import {openArchiveRegion} from './archive-source.js'

export interface RebuildSources {
  /** a blob the delta carries (its index, its pack) */
  deltaBlob(digest: string, size: number): Promise<RandomSource>
  /** the base's copy of an artifact; undefined when there is none */
  baseArtifact(digest: string): Promise<RandomSource | undefined>
  /** the base's chunk index blob `index`; undefined when there is none */
  baseIndex(index: string): Promise<Buffer | undefined>
}

/** The artifacts of a delta that are rebuilt from a pack rather than carried. */
export const rebuiltArtifacts = (m: BundleManifest): Array<BundleArtifact & {delta: NonNullable<BundleArtifact['delta']>}> =>
  m.artifacts.filter((a): a is BundleArtifact & {delta: NonNullable<BundleArtifact['delta']>} => a.delta !== undefined)

const missingBase = (a: BundleArtifact, what: string) =>
  integrityError('BASE_MISSING', `${a.name}: ${what} is not here, so the artifact cannot be rebuilt from the delta; import the full bundle`, {artifact: a.name})

async function readBlob(source: RandomSource, size: number, digest: string, what: string): Promise<Buffer> {
  const bytes = Buffer.alloc(size)
  const got = await readFully(source, bytes, 0, size, 0)
  if (got !== size || sha256Of(bytes) !== digest) throw integrityError('DIGEST_MISMATCH', `${what} (${digest}) does not match its digest`)
  return bytes
}

/**
 * Rebuilds one chunked artifact of a delta (see rebuildChunked): into `target` (temp file, fsync,
 * rename) or, without one, only checked. A base copy or index that is missing or corrupt is exit 3
 * naming the artifact.
 */
export async function rebuildArtifact(
  a: BundleArtifact & {delta: NonNullable<BundleArtifact['delta']>},
  sources: RebuildSources,
  options: {target?: string; tempDir?: string; onProgress?: ProgressListener; onSlab?: () => void} = {},
): Promise<void> {
  const delta = a.delta
  if (!a.chunks || a.chunks.index !== delta.index) throw integrityError('BAD_BUNDLE_JSON', `${a.name}: its delta names another chunk index than the artifact`)
  const open: RandomSource[] = []
  try {
    const indexSource = await sources.deltaBlob(delta.index, a.chunks.size)
    open.push(indexSource)
    const index = ChunkIndex.parse(await readBlob(indexSource, a.chunks.size, delta.index, `the chunk index of ${a.name}`), a.name)
    const baseIndexes: ChunkIndex[] = []
    const baseSources: RandomSource[] = []
    for (const entry of delta.base) {
      const bytes = await sources.baseIndex(entry.index)
      if (!bytes) throw missingBase(a, `the base's chunk index ${entry.index}`)
      if (sha256Of(bytes) !== entry.index) throw integrityError('BASE_CORRUPT', `${a.name}: the base's chunk index ${entry.index} is corrupt; import the full bundle`, {artifact: a.name})
      baseIndexes.push(ChunkIndex.parse(bytes, `${a.name} (base)`))
      const source = await sources.baseArtifact(entry.digest)
      if (!source) throw missingBase(a, `the base's copy ${entry.digest}`)
      open.push(source)
      baseSources.push(source)
    }
    const pack = await sources.deltaBlob(delta.pack, delta.packSize)
    open.push(pack)
    await rebuildChunked(
      {index, base: new BaseChunks(baseIndexes), sources: baseSources, pack, expect: {digest: a.digest, size: a.size}, what: a.name, onProgress: options.onProgress, onSlab: options.onSlab},
      options.target,
      options.tempDir,
    )
  } finally {
    for (const s of open) await s.close().catch(() => undefined)
  }
}

/**
 * `bundle verify --base`: rebuilds every chunked artifact of a verified delta as a stream, from
 * its pack (in the delta) and the base's copies (in the base bundle), and checks each chunk and
 * the whole file's sha256; nothing is written.
 */
export async function verifyRebuilds(
  manifest: BundleManifest,
  delta: {path: string; offsets: Map<string, number>},
  base: {archive?: {path: string; offsets: Map<string, number>}; chunkIndexes: Map<string, {digest: string; index: ChunkIndex}>; manifest: BundleManifest},
  onProgress?: ProgressListener,
): Promise<number> {
  const rebuilt = rebuiltArtifacts(manifest)
  if (rebuilt.length === 0) return 0
  const inArchive = async (archive: {path: string; offsets: Map<string, number>}, digest: string, size: number) => {
    const at = archive.offsets.get(digest)
    return at === undefined ? undefined : openArchiveRegion(archive.path, at, size)
  }
  const baseArchive = base.archive
  const sizes = new Map(base.manifest.artifacts.map((a) => [a.digest, a.size]))
  for (const a of rebuilt) {
    await rebuildArtifact(a, {
      deltaBlob: async (digest, size) => (await inArchive(delta, digest, size)) ?? Promise.reject(integrityError('MISSING_BLOB', `${a.name}: blob ${digest} is not in the delta`)),
      baseArtifact: async (digest) => (baseArchive ? inArchive(baseArchive, digest, sizes.get(digest) ?? 0) : undefined),
      baseIndex: async (digest) => {
        for (const v of base.chunkIndexes.values()) if (v.digest === digest) return v.index.serialise()
        return undefined
      },
    }, {onProgress})
  }
  return rebuilt.length
}
