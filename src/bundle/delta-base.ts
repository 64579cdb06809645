// A base bundle, read: what it holds, for `bundle build --since`, `bundle verify --base` and
// `bundle push --base`. Only what reading a bundle takes: checking a delta against its base loads
// none of the build (a base given as a lock is delta.ts's).
import {createHash} from 'node:crypto'
import {integrityError, usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import type {DeltaBase} from './build-options.js'
import {ENTRY, parseBundleJson, type BundleArtifact, type BundleManifest} from './format.js'
import {openBundleInput, type BundleInput} from './input.js'
import {readTar, type TarEntry} from './tar-reader.js'
import type {BaseBlobs} from './verify.js'
import {sha256Of} from '../store/hashing.js'
import {ChunkIndex} from '../chunks/index-format.js'
import type {BaseIndexes} from './chunked.js'
import {readBaseHeaders} from './base-headers.js'

/** A base bundle for a delta: what it holds, for `build --since` and `verify --base`. */
export interface BundleBase extends DeltaBase, BaseBlobs {
  manifest: BundleManifest
  chunkIndexes: BaseIndexes
  /** a base read from a bundle: where it is, and where each blob it carries starts in it */
  archive?: {path: string; offsets: Map<string, number>}
  /** every blob digest the base carries or, being a delta itself, relies on */
  digests: Set<string>
}

const RETAIN_MAX = 4 << 20
const RETAIN_TOTAL = 64 << 20
const sha = sha256Of

export const isLockPath = (path: string) => path.endsWith('.json') && !path.endsWith('.parts.json')

async function readAll(entry: TarEntry, limit: number): Promise<Buffer> {
  if (entry.size > limit) throw integrityError('ENTRY_TOO_LARGE', `${entry.path} is ${entry.size} bytes, above the limit of ${limit}`)
  const parts: Buffer[] = []
  for await (const chunk of entry.body) parts.push(Buffer.from(chunk))
  return Buffer.concat(parts)
}

export function makeBase(manifest: BundleManifest, digest: string, digests: Set<string>, retained = new Map<string, Buffer>(), chunkIndexes: BaseIndexes = new Map(), archive?: BundleBase['archive']): BundleBase {
  return {
    chunkIndexes,
    ...(archive ? {archive} : {}),
    name: manifest.name,
    version: manifest.version,
    digest,
    manifest,
    digests,
    has: (d) => digests.has(d),
    content: (d) => retained.get(d),
  }
}

/**
 * Reads a base bundle: its bundle.json (whose sha256 a delta names), and every
 * blob it carries. With `checkBlobs`, in one pass, each blob hashed against its
 * name, so `verify --base` vouches for the bytes a delta leaves out (a base's
 * own signature is not needed, the delta's signature covers its digest); small
 * JSON blobs are kept to walk image graphs. Without, by seeking (seekBase).
 */
export async function readBaseBundle(input: BundleInput, options: {checkBlobs?: boolean; onProgress?: ProgressListener} = {}): Promise<BundleBase> {
  if (!options.checkBlobs) return seekBase(input)
  const entries = readTar(input.open(), {onBytes: (n) => options.onProgress?.({phase: 'read base', done: n, total: input.size})})
  const first = (await entries.next()).value as TarEntry | undefined
  if (!first || first.path !== ENTRY.manifest) throw integrityError('NOT_A_BUNDLE', `${input.label} is not a Ferry bundle (no bundle.json first)`)
  const bundleJson = await readAll(first, 16 << 20)
  const manifest = parseBundleJson(bundleJson)
  // what a site running the base holds: what the base carries, relies on, or rebuilds from a pack
  const digests = new Set<string>([...(manifest.omitted ?? []), ...manifest.artifacts.filter((a) => a.delta).map((a) => a.digest)])
  const offsets = new Map<string, number>()
  const retained = new Map<string, Buffer>()
  let retainedBytes = 0
  // chunk indexes, by their digest: the artifacts each one describes
  const indexed = new Map<string, BundleArtifact[]>()
  for (const a of manifest.artifacts) if (a.chunks) indexed.set(a.chunks.index, [...(indexed.get(a.chunks.index) ?? []), a])
  const chunkIndexes: BaseIndexes = new Map()
  for await (const entry of entries) {
    if (!entry.path.startsWith(ENTRY.blobPrefix)) {
      for await (const _ of entry.body) void _
      continue
    }
    const digest = `sha256:${entry.path.slice(ENTRY.blobPrefix.length)}`
    const hash = options.checkBlobs ? createHash('sha256') : undefined
    offsets.set(digest, entry.offset)
    const describes = indexed.get(digest)
    const keep = describes !== undefined || (entry.size <= RETAIN_MAX && retainedBytes + entry.size <= RETAIN_TOTAL)
    const kept: Buffer[] = []
    for await (const chunk of entry.body) {
      hash?.update(chunk)
      if (keep) kept.push(Buffer.from(chunk))
    }
    if (hash && 'sha256:' + hash.digest('hex') !== digest) {
      throw integrityError('BASE_CORRUPT', `the base ${input.label} is damaged: blob ${digest} does not match its content`)
    }
    if (describes) {
      const index = ChunkIndex.parse(Buffer.concat(kept), describes[0].name)
      for (const a of describes) chunkIndexes.set(a.digest, {digest, index})
      digests.add(digest)
      continue
    }
    if (keep && kept.length && kept[0][0] === 0x7b) {
      const bytes = Buffer.concat(kept)
      retained.set(digest, bytes)
      retainedBytes += bytes.length
    }
    digests.add(digest)
  }
  return makeBase(manifest, sha(bundleJson), digests, retained, chunkIndexes, {path: input.label, offsets})
}

/**
 * The base of `build --since`: bundle.json, the tar headers and the chunk indexes, read by seeking
 * (see readBaseHeaders). It keeps no blob content: a build needs none.
 */
async function seekBase(input: BundleInput): Promise<BundleBase> {
  const {manifest, bundleJson, offsets, chunkIndexes} = await readBaseHeaders(input)
  const digests = new Set<string>([...(manifest.omitted ?? []), ...manifest.artifacts.filter((a) => a.delta).map((a) => a.digest), ...offsets.keys()])
  return makeBase(manifest, sha(bundleJson), digests, new Map(), chunkIndexes, {path: input.label, offsets})
}

/** A base for `bundle verify --base`: only a bundle, whose bytes can be checked, will do. */
export async function loadVerifyBase(path: string, onProgress?: ProgressListener): Promise<BundleBase> {
  if (isLockPath(path)) throw usageError('BASE_NOT_A_BUNDLE', `--base ${path}: give the base bundle itself (a lock holds no bytes to check)`)
  return readBaseBundle(await openBundleInput(path), {checkBlobs: true, onProgress})
}
