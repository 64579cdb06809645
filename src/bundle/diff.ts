import {open} from 'node:fs/promises'
import {ChunkIndex} from '../chunks/index-format.js'
import {BaseChunks, summarisePack} from '../chunks/plan.js'
import {artifactVersion, pairArtifacts} from '../manifest/artifact-changes.js'
import {indexTar, type TarMember} from '../sources/oci/tar-index.js'
import {CHUNKED_MAX_SHARE, type ChunkReport} from './chunked.js'
import {ENTRY, type BundleArtifact, type BundleManifest} from './format.js'
import type {BundleInput} from './input.js'
import {inspectBundle} from './inspect.js'
import {readTar} from './tar-reader.js'
import {isBundleDocument} from './documents.js'

export interface Change {
  /** the artifact's name, an image's reference (in NEW; in OLD for a removal) */
  name: string
  kind: string
  /** a changed image whose tag moved: its reference in OLD */
  previous?: string
  /** digests in OLD and NEW */
  from?: string
  to?: string
  /** versions in OLD and NEW (k3s, Kubernetes, an image's tag), when known */
  fromVersion?: string
  toVersion?: string
  /** in NEW (in OLD for a removal) */
  size: number
}

export interface BundleDiff {
  old: {name: string; version: string}
  new: {name: string; version: string}
  /** files, binaries, VM images: by artifact name */
  artifacts: {added: Change[]; removed: Change[]; changed: Change[]}
  /** container images: by reference */
  images: {added: Change[]; removed: Change[]; changed: Change[]}
  /** what a delta from OLD to NEW would carry: blobs of NEW that OLD lacks */
  delta: {blobs: number; bytes: number}
  /** the full NEW bundle's blob bytes, for comparison */
  full: {blobs: number; bytes: number}
  /** per chunked artifact of NEW: chunks, how many OLD holds, and the bytes a chunked delta would carry */
  chunked: ChunkReport[]
}

/** The chunk indexes a bundle file carries, by artifact digest (none when it is not one seekable file). */
async function chunkIndexes(file: string, manifest: BundleManifest, members: Map<string, TarMember> | undefined): Promise<Map<string, ChunkIndex>> {
  const out = new Map<string, ChunkIndex>()
  if (!members) return out
  const fh = await open(file, 'r')
  try {
    for (const a of manifest.artifacts) {
      const m = a.chunks && members.get(ENTRY.blobPrefix + a.chunks.index.slice('sha256:'.length))
      if (!m || m.size > 64 << 20) continue
      const bytes = Buffer.alloc(m.size)
      await fh.read(bytes, 0, m.size, m.offset)
      out.set(a.digest, ChunkIndex.parse(bytes, a.name))
    }
  } finally {
    await fh.close()
  }
  return out
}

/** What a chunked delta from OLD would carry for each chunked artifact of NEW (see chunked.ts). */
function chunkedDelta(olds: Map<string, ChunkIndex>, news: Map<string, ChunkIndex>, manifest: BundleManifest): ChunkReport[] {
  const base = new BaseChunks([...olds.values()])
  const reports: ChunkReport[] = []
  for (const a of manifest.artifacts) {
    const index = news.get(a.digest)
    if (!index) continue
    if (olds.has(a.digest)) {
      reports.push({name: a.name, carried: 'omitted', chunks: index.count, reused: index.count, newBytes: 0})
      continue
    }
    const s = summarisePack(index, base)
    const whole = olds.size === 0 || s.packSize > CHUNKED_MAX_SHARE * a.size
    reports.push(whole ? {name: a.name, carried: 'whole', chunks: s.chunks, reused: 0, newBytes: a.size} : {name: a.name, carried: 'chunks', chunks: s.chunks, reused: s.reused, newBytes: s.packSize})
  }
  return reports
}

/** digest → size of every blob entry, from tar headers (seeking) for a file, else by streaming. */
async function blobSizes(input: BundleInput, members: Map<string, TarMember> | undefined): Promise<Map<string, number>> {
  const sizes = new Map<string, number>()
  const add = (path: string, size: number) => {
    if (path.startsWith(ENTRY.blobPrefix)) sizes.set(`sha256:${path.slice(ENTRY.blobPrefix.length)}`, size)
  }
  if (members) {
    for (const [path, m] of members) add(path, m.size)
    return sizes
  }
  for await (const entry of readTar(input.open())) {
    add(entry.path, entry.size)
    for await (const chunk of entry.body) void chunk
  }
  return sizes
}

function compare(olds: BundleArtifact[], news: BundleArtifact[], key: (a: BundleArtifact) => string) {
  const named = (a: BundleArtifact) => ({name: key(a), kind: a.kind, digest: a.digest, ref: a.ref, a})
  const pairs = pairArtifacts(olds.map(named), news.map(named))
  const version = (which: 'fromVersion' | 'toVersion', a: BundleArtifact) => {
    const v = artifactVersion(a)
    return v === undefined ? {} : {[which]: v}
  }
  const change = (a: BundleArtifact): Change => ({name: key(a), kind: a.kind, size: a.imageSize ?? a.size})
  return {
    added: pairs.added.map(({a}) => ({...change(a), to: a.digest, ...version('toVersion', a)})),
    removed: pairs.removed.map(({a}) => ({...change(a), from: a.digest, ...version('fromVersion', a)})),
    changed: pairs.changed.map(({old, new: n}) => ({
      ...change(n.a),
      ...(old.name === n.name ? {} : {previous: old.name}),
      from: old.a.digest,
      to: n.a.digest,
      ...version('fromVersion', old.a),
      ...version('toVersion', n.a),
    })),
  }
}

// the SBOM and provenance describe the rest (and differ with every version): not compared
const notImage = (m: BundleManifest) => m.artifacts.filter((a) => a.kind !== 'image' && !isBundleDocument(a))
const images = (m: BundleManifest) => m.artifacts.filter((a) => a.kind === 'image')

/**
 * Compares two bundles by what they carry: artifacts by name, images by reference (added,
 * removed, changed digest), and the bytes a delta from OLD to NEW would carry. Reads bundle.json
 * and the archive's headers only; nothing is hashed (use "bundle verify" for that).
 */
export async function diffBundles(oldInput: BundleInput, newInput: BundleInput): Promise<BundleDiff> {
  const [a, b] = await Promise.all([inspectBundle(oldInput), inspectBundle(newInput)])
  const [oldMembers, newMembers] = await Promise.all([indexTar(oldInput.label).catch(() => undefined), indexTar(newInput.label).catch(() => undefined)])
  const [oldBlobs, newBlobs] = await Promise.all([blobSizes(oldInput, oldMembers), blobSizes(newInput, newMembers)])
  const chunked = chunkedDelta(await chunkIndexes(oldInput.label, a.manifest, oldMembers), await chunkIndexes(newInput.label, b.manifest, newMembers), b.manifest)
  let bytes = 0
  let blobs = 0
  let fullBytes = 0
  for (const [digest, size] of newBlobs) {
    fullBytes += size
    if (oldBlobs.has(digest)) continue
    blobs++
    bytes += size
  }
  // a chunked artifact would travel as its pack
  for (const c of chunked) {
    const a = b.manifest.artifacts.find((x) => x.name === c.name)!
    if (c.carried === 'chunks' && newBlobs.has(a.digest)) bytes += c.newBytes - a.size
  }
  const ref = (x: BundleArtifact) => x.ref ?? x.name
  return {
    old: {name: a.manifest.name, version: a.manifest.version},
    new: {name: b.manifest.name, version: b.manifest.version},
    artifacts: compare(notImage(a.manifest), notImage(b.manifest), (x) => x.name),
    images: compare(images(a.manifest), images(b.manifest), ref),
    delta: {blobs, bytes},
    full: {blobs: newBlobs.size, bytes: fullBytes},
    chunked,
  }
}
