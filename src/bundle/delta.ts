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

const sha = sha256Of

/**
 * The base a delta is built against: an older bundle (file, stick folder or
 * parts.json) or its lock. From a lock, bundle.json is rebuilt as the build
 * wrote it, so a base built with a key rotation must be given as the bundle.
 */
export async function loadBase(path: string, options: {checkBlobs?: boolean; onProgress?: ProgressListener; store?: BlobStore} = {}): Promise<BundleBase> {
  if (isLockPath(path)) {
    const lock = await readLock(path)
    const described = describeLock(lock).manifest
    const digests = new Set(lock.artifacts.map((a) => `sha256:${a.sha256}`))
    if (!lock.artifacts.some(isChunked)) return makeBase(described, sha(serialise(described)), digests)
    // The base's bundle.json named its chunk indexes: they are made again from its artifacts in the store.
    if (!options.store) throw usageError('BASE_NOT_A_BUNDLE', `${path}: this lock has chunked artifacts; give the base bundle itself`)
    const chunked = await planChunked(lock, described.artifacts, {store: options.store})
    const manifest = {...described, artifacts: chunked.artifacts}
    for (const blob of chunked.blobs) digests.add(blob.digest)
    return makeBase(manifest, sha(serialise(manifest)), digests, new Map(), chunked.indexes)
  }
  return readBaseBundle(await openBundleInput(path), options)
}
