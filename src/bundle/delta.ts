// The base a delta is built against, given as a bundle or as its lock.
import {readLock} from '../manifest/lock-read.js'
import {usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {describeLock, serialise} from './build.js'
import {openBundleInput} from './input.js'
import {sha256Of} from '../store/hashing.js'
import type {BlobStore} from '../store/blob-store.js'
import {isChunked, planChunked} from './chunked.js'
import {isLockPath, makeBase, readBaseBundle, type BundleBase} from './delta-base.js'
import {lockDigest, makeBundleDocuments, withoutDocuments} from './documents.js'
import {imageSbomArtifacts} from './image-sboms.js'

const sha = sha256Of

function missingDocument(path: string, digest: string): never {
  throw usageError('BASE_NOT_A_BUNDLE', `${path}: the image document ${digest} of this lock is not in the blob store; give the base bundle itself`)
}

/**
 * The base a delta is built against: an older bundle (file, stick folder or
 * parts.json) or its lock. From a lock, bundle.json is rebuilt as the build
 * wrote it, so a base built with a key rotation must be given as the bundle.
 */
export async function loadBase(path: string, options: {checkBlobs?: boolean; onProgress?: ProgressListener; store?: BlobStore} = {}): Promise<BundleBase> {
  if (/\.ya?ml$/i.test(path)) {
    throw usageError('IS_A_MANIFEST', `${path} is a manifest, not a base: give the older bundle (.ferry.tar, stick folder or .parts.json) or the lock it was built from (.lock.json)`)
  }
  if (isLockPath(path)) {
    const given = await readLock(path)
    const lock = withoutDocuments(given)
    const described = describeLock(lock).manifest
    const digests = new Set(lock.artifacts.map((a) => `sha256:${a.sha256}`))
    // The base's bundle.json named its chunk indexes and its SBOM and provenance: they are made
    // again from its artifacts and image documents in the store.
    const store = options.store
    const needsStore = lock.artifacts.some((a) => isChunked(a) || a.kind === 'image')
    if (needsStore && !store) throw usageError('BASE_NOT_A_BUNDLE', `${path}: this lock has chunked artifacts or images; give the base bundle itself (.ferry.tar)`)
    const chunked = lock.artifacts.some(isChunked) ? await planChunked(lock, described.artifacts, {store: store!}) : undefined
    const artifacts = [...(chunked?.artifacts ?? described.artifacts), ...imageSbomArtifacts(lock)]
    const documents = await makeBundleDocuments(lock, artifacts, async (d, size) => (await store?.readSmall(d, size)) ?? missingDocument(path, d), lockDigest(given))
    const manifest = {...described, artifacts: [...artifacts, ...documents.artifacts]}
    for (const digest of [...(chunked?.blobs.map((b) => b.digest) ?? []), ...artifacts.map((a) => a.digest), ...documents.bytes.keys()]) digests.add(digest)
    return makeBase(manifest, sha(serialise(manifest)), digests, new Map(), chunked?.indexes)
  }
  return readBaseBundle(await openBundleInput(path), options)
}
