import {createHash} from 'node:crypto'
import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import type {LockFile, LockedArtifact} from '../manifest/lock-format.js'
import type {BlobStore} from '../store/blob-store.js'
import {acquirePidLock} from '../store/pid-lock.js'
import {fetchToStore} from '../sources/http.js'
import {mapPool} from '../sources/pool.js'
import {armorSignatures, type Signer} from '../trust/sign.js'
import {trustError} from '../ui/errors.js'
import type {ProgressListener} from '../ui/progress.js'
import {BUNDLE_SCHEMA, bundleFileName, type BundleArtifact, type BundleManifest} from './format.js'
import {type BlobFile, writeBundleArchive, type WrittenBundle} from './write.js'

export interface BuildOptions {
  store: BlobStore
  signers: Signer[]
  outDir: string
  /** parallel downloads */
  concurrency?: number
  onProgress?: ProgressListener
  /** "now" for the expiry check; tests only */
  now?: Date
}

export interface BuildResult extends WrittenBundle {
  manifest: BundleManifest
  /** bytes downloaded in this build (0 when everything was in the store) */
  fetched: number
}

const sha = (bytes: Buffer | string) => 'sha256:' + createHash('sha256').update(bytes).digest('hex')

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
    upstream: a.upstream,
  }
}

/** Fetches every artifact of the lock into the store (verifying each digest) with bounded parallelism. */
async function fetchArtifacts(lock: LockFile, options: BuildOptions): Promise<{blobs: BlobFile[]; fetched: number}> {
  const total = lock.artifacts.reduce((n, a) => n + a.size, 0)
  const progress = new Map<string, number>()
  const report = () => {
    let done = 0
    for (const v of progress.values()) done += v
    options.onProgress?.({phase: 'fetch', done, total})
  }
  let fetched = 0
  const blobs = await mapPool(lock.artifacts, options.concurrency ?? 4, async (artifact) => {
    const got = await fetchToStore(options.store, artifact.url, {sha256: artifact.sha256, size: artifact.size}, {
      item: artifact.name,
      onProgress: (e) => {
        progress.set(artifact.name, e.done)
        report()
      },
    })
    progress.set(artifact.name, artifact.size)
    report()
    fetched += got.fetched
    return {digest: got.digest, size: got.size, path: options.store.pathOf(got.digest)}
  })
  return {blobs, fetched}
}

/**
 * Builds `<outDir>/<name>-<version>.ferry.tar` from a lock: fetch and verify
 * every artifact into the store, write bundle.json, sign it, then write the
 * archive atomically. Everything that goes into the bytes comes from the lock,
 * so two builds of one lock are byte-identical.
 */
export async function buildBundle(lock: LockFile, options: BuildOptions): Promise<BuildResult> {
  const now = options.now ?? new Date()
  if (Date.parse(lock.expires) <= now.getTime()) {
    throw trustError('LOCK_EXPIRED', `the lock for ${lock.name} ${lock.version} expired at ${lock.expires}; run "ferry manifest lock" again`)
  }
  if (options.signers.length === 0) throw trustError('NO_SIGNER', 'a bundle must be signed: give --key FILE or --gpg-key FPR')
  await options.store.init()
  await mkdir(options.outDir, {recursive: true})
  const target = join(options.outDir, bundleFileName(lock.name, lock.version))
  const lockFile = await acquirePidLock(`${target}.lock`, `building ${target}`)
  try {
    const {blobs, fetched} = await fetchArtifacts(lock, options)
    const indexJson = serialise({schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: []})
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
    const bundleJson = serialise(manifest)
    const signedAt = new Date(lock.resolved)
    const parts = []
    for (const signer of options.signers) parts.push(await signer.sign(bundleJson, signedAt))
    const signature = Buffer.from(armorSignatures(parts))
    const written = await writeBundleArchive(target, {bundleJson, signature, indexJson, blobs}, options.onProgress)
    return {...written, manifest, fetched}
  } finally {
    await lockFile.release()
  }
}
