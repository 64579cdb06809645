import {refuseFileAsFolder} from '../store/folder.js'
import {join} from 'node:path'
import type {LockFile, LockedArtifact} from '../manifest/lock-format.js'
import {acquirePidLock} from '../store/pid-lock.js'
import {mkdirDurable} from '../store/atomic-file.js'
import {armorSignatures} from '../trust/sign.js'
import {FerryError, noSignerError, trustError} from '../errors.js'
import {fetchAndWrite, fileJobs} from './assemble.js'
import {type ChunkReport, planChunked} from './chunked.js'
import type {BuildOptions} from './build-options.js'
import {BUNDLE_SCHEMA, bundleFileName, type BundleArtifact, type BundleManifest} from './format.js'
import {lockDigest, makeBundleDocuments, storeDocuments, withoutDocuments} from './documents.js'
import {checkLockedSignatures, signatureBlobFiles} from './image-signatures.js'
import {fetchImageSboms} from './image-sbom-fetch.js'
import {imageSbomArtifacts} from './image-sboms.js'
import {imageIndexEntries, planImages} from './images.js'
import {RegistryPool} from '../sources/oci/registry-source.js'
import {removeAbandonedPartials, type WrittenBundle} from './write.js'
import {sha256Of} from '../store/hashing.js'
import {refuseOtherContent} from './same-version.js'

export type {BuildOptions, DeltaBase} from './build-options.js'


export interface BuildResult extends WrittenBundle {
  manifest: BundleManifest
  /** bytes downloaded in this build (0 when everything was in the store) */
  fetched: number
  /** the store kept this very bundle from an earlier build of the same lock: it was linked, not written */
  reused?: boolean
  /** per chunked artifact: chunks, how many the base had, bytes carried */
  chunked: ChunkReport[]
}

const sha = sha256Of

/** bundle.json and index.json are serialised one way only, so equal inputs give equal bytes. */
export function serialise(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 2) + '\n')
}

function toBundleArtifact(a: LockedArtifact): BundleArtifact {
  return {
    name: a.name,
    kind: a.kind,
    digest: `sha256:${a.sha256}`,
    size: a.size,
    mediaType: a.mediaType,
    source: a.url,
    ...(a.dest === undefined ? {} : {dest: a.dest}),
    ...(a.platform === undefined ? {} : {platform: a.platform}),
    ...(a.version === undefined ? {} : {version: a.version}),
    ...(a.ref === undefined ? {} : {ref: a.ref}),
    ...(a.platforms === undefined ? {} : {platforms: a.platforms}),
    ...(a.imageSize === undefined ? {} : {imageSize: a.imageSize}),
    upstream: a.upstream,
    ...(a.cosign === undefined ? {} : {cosign: a.cosign}),
  }
}

/**
 * index.json and bundle.json's fields for a lock, as every build of it writes
 * them (a delta adds base/omitted, a rotation its keys). Also gives the digest
 * of a base bundle that is known only by its lock.
 */
export function describeLock(lock: LockFile): {indexJson: Buffer; manifest: BundleManifest} {
  const indexJson = serialise({schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: imageIndexEntries(lock)})
  const manifest: BundleManifest = {
    schema: BUNDLE_SCHEMA,
    name: lock.name,
    version: lock.version,
    created: lock.resolved,
    expires: lock.expires,
    platforms: lock.platforms,
    health: lock.health,
    index: sha(indexJson),
    artifacts: lock.artifacts.map(toBundleArtifact),
  }
  return {indexJson, manifest}
}

/**
 * Builds `<outDir>/<name>-<version>.ferry.tar` from a lock: fetch and verify
 * every artifact into the store, write bundle.json, sign it, then write the
 * archive atomically. Everything that goes into the bytes comes from the lock,
 * so two builds of one lock are byte-identical.
 */
export async function buildBundle(given: LockFile, options: BuildOptions): Promise<BuildResult> {
  const lock = withoutDocuments(given)
  const now = options.now ?? new Date()
  if (Date.parse(lock.expires) <= now.getTime()) {
    throw trustError('LOCK_EXPIRED', `the lock for ${lock.name} ${lock.version} expired at ${lock.expires}; run "ferry manifest lock" again`)
  }
  if (options.signers.length === 0) throw noSignerError('a bundle')
  await options.store.init()
  await refuseFileAsFolder(options.outDir, '--out')
  await mkdirDurable(options.outDir)
  const since = options.since
  const target = join(options.outDir, bundleFileName(lock.name, lock.version, since?.version))
  const lockFile = await acquirePidLock(`${target}.lock`, `building ${target}`)
  await removeAbandonedPartials(target)
  try {
    // Signed images: their signatures are checked again before anything is fetched.
    const pool = new RegistryPool(options.registry ?? {})
    const signatures = signatureBlobFiles(await checkLockedSignatures(lock.artifacts, options.store, pool), options.store)
    // The SBOMs the images' registries hold, as the lock pinned them (a delta's base may have them).
    const imageSboms = imageSbomArtifacts(lock)
    const imageSbomBlobs = () => fetchImageSboms(lock, options.store, pool, (d) => !!since?.has(d))
    await imageSbomBlobs()
    const described = describeLock(lock)
    const indexJson = described.indexJson
    // Chunked artifacts first: bundle.json names their indexes (and, in a delta, their packs).
    const chunked = await planChunked(lock, described.manifest.artifacts, {
      store: options.store,
      base: since && {has: (d) => since.has(d), indexes: since.chunkIndexes, manifest: since.manifest},
      fetch: true,
      concurrency: options.concurrency,
      onProgress: options.onProgress,
    })
    // A delta neither fetches nor carries what its base has, nor what it rebuilds from a pack.
    const omitted = since ? [...new Set([...lock.artifacts.map((a) => `sha256:${a.sha256}`).filter((d) => since.has(d)), ...chunked.omitted, ...signatures.filter((b) => since.has(b.digest)).map((b) => b.digest)])].sort() : []
    const carriedSignatures = signatures.filter((b) => !since?.has(b.digest))
    const carried = {...lock, artifacts: lock.artifacts.filter((a) => !since?.has(`sha256:${a.sha256}`) && !chunked.rebuilt.has(`sha256:${a.sha256}`))}
    const plan = async () => {
      const files = fileJobs(carried, options)
      const images = await planImages(lock, {store: options.store, registry: options.registry, skip: since ? (d) => since.has(d) : undefined})
      const taken = new Set([...files.blobs, ...chunked.blobs, ...images.blobs].map((b) => b.digest))
      return {files: {blobs: [...files.blobs, ...chunked.blobs, ...carriedSignatures.filter((b) => !taken.has(b.digest))], jobs: files.jobs}, images}
    }
    const first = await plan()
    const images = first.images
    // The SBOM and provenance: made from the lock and the image documents planning brought into the store.
    const shipped = [...chunked.artifacts, ...imageSboms]
    const documents = await makeBundleDocuments(lock, shipped, (d, size) => options.store.readSmall(d, size), lockDigest(given))
    const documentBlobs = async () => (await storeDocuments(documents, options.store)).filter((b) => !since?.has(b.digest))
    const withDocuments = async (p: typeof first) => ({...p, files: {...p.files, blobs: [...p.files.blobs, ...(await imageSbomBlobs()), ...(await documentBlobs())]}})
    const leftOut = [...images.omitted, ...[...imageSboms, ...documents.artifacts].map((a) => a.digest).filter((d) => since?.has(d))]
    if (leftOut.length) omitted.splice(0, omitted.length, ...[...new Set([...omitted, ...leftOut])].sort())
    const manifest: BundleManifest = {
      ...described.manifest,
      artifacts: [...shipped, ...documents.artifacts],
      ...(since ? {base: {name: since.name, version: since.version, digest: since.digest}, omitted} : {}),
      ...(options.rotation ? {rotation: options.rotation} : {}),
    }
    const bundleJson = serialise(manifest)
    await refuseOtherContent(target, bundleJson, `${lock.name} ${lock.version}`)
    const signedAt = new Date(lock.resolved)
    const parts = []
    for (const signer of options.signers) parts.push(await signer.sign(bundleJson, signedAt))
    const entries = {bundleJson, signature: Buffer.from(armorSignatures(parts)), indexJson}
    try {
      const planned = await withDocuments(first)
      const {written, fetched, reused} = await fetchAndWrite(target, entries, planned.files, planned.images, options)
      return {...written, manifest, fetched, ...(reused ? {reused} : {}), chunked: chunked.report}
    } catch (err) {
      // A cached blob damaged on disk (a power cut before it was sealed): drop it, fetch it again, write once more.
      // One that moved (another build sharing the store replaced its pack): look for it again.
      const code = err instanceof FerryError ? err.code : undefined
      const damaged = code === 'STORE_CORRUPT' || code === 'STORE_MOVED' ? ((err as FerryError).data?.digests as string[] | undefined) : undefined
      if (!damaged) throw err
      if (code === 'STORE_CORRUPT') for (const digest of damaged) await options.store.evict(digest)
      options.store.packs.refresh()
      const again = await withDocuments(await plan())
      const {written, fetched} = await fetchAndWrite(target, entries, again.files, again.images, options)
      return {...written, manifest, fetched, chunked: chunked.report}
    }
  } finally {
    await lockFile.release()
  }
}
