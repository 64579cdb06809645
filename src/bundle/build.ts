import {createHash, randomBytes} from 'node:crypto'
import {type FileHandle, link, mkdir, open, rename, rm, stat, writeFile} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import type {LockFile, LockedArtifact} from '../manifest/lock-format.js'
import type {BlobStore} from '../store/blob-store.js'
import {BlobWriter} from '../store/blob-writer.js'
import {acquirePidLock} from '../store/pid-lock.js'
import {fetchToStore} from '../sources/http.js'
import {mapPool} from '../sources/pool.js'
import {armorSignatures, type Signer} from '../trust/sign.js'
import {syncDir} from '../store/atomic-file.js'
import {asLocalIoError, FerryError, trustError} from '../ui/errors.js'
import type {ProgressListener} from '../ui/progress.js'
import {BUNDLE_SCHEMA, bundleFileName, type BundleArtifact, type BundleManifest, type KeyRotation} from './format.js'
import {type BlobJob, imageIndexEntries, planImages, type PlannedImages} from './images.js'
import {archiveLayout, type BlobFile, type BundleEntries, removeAbandonedPartials, writeBundleArchive, type WrittenBundle} from './write.js'
import type {RegistryOptions} from '../sources/oci/registry-client.js'

export interface BuildOptions {
  store: BlobStore
  signers: Signer[]
  outDir: string
  /** parallel downloads */
  concurrency?: number
  onProgress?: ProgressListener
  /** "now" for the expiry check; tests only */
  now?: Date
  /** registry TLS and auth options for the lock's images */
  registry?: RegistryOptions
  /** image blob downloads at once, across all images; default 8 */
  imageJobs?: number
  /** a new trusted key set for devices, carried inside the signed bundle.json (see rotation.ts) */
  rotation?: KeyRotation
  /** build a delta: leave out the blobs this base already carries (see delta.ts) */
  since?: DeltaBase
}

/** The bundle a delta is built against: the sites that have it already hold its blobs. */
export interface DeltaBase {
  name: string
  version: string
  /** sha256 of the base's bundle.json */
  digest: string
  has(digest: string): boolean
}

export interface BuildResult extends WrittenBundle {
  manifest: BundleManifest
  /** bytes downloaded in this build (0 when everything was in the store) */
  fetched: number
  /** the store kept this very bundle from an earlier build of the same lock: it was linked, not written */
  reused?: boolean
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
    ...(a.ref === undefined ? {} : {ref: a.ref}),
    ...(a.platforms === undefined ? {} : {platforms: a.platforms}),
    ...(a.imageSize === undefined ? {} : {imageSize: a.imageSize}),
    upstream: a.upstream,
  }
}

/** The lock's files (everything but images) as blobs of the bundle and jobs that fetch them. */
function fileJobs(lock: LockFile, options: BuildOptions): {blobs: BlobFile[]; jobs: BlobJob[]} {
  // Images are planned by planImages: their digest names a manifest, not one file to download.
  const files = lock.artifacts.filter((a) => a.kind !== 'image').sort((x, y) => (x.sha256 < y.sha256 ? -1 : 1))
  const store = options.store
  return {
    blobs: files.map((a) => ({digest: `sha256:${a.sha256}`, size: a.size, path: store.pathOf(`sha256:${a.sha256}`)})),
    jobs: files.map((a) => ({
      digest: `sha256:${a.sha256}`,
      size: a.size,
      fetch: async (onData) => {
        let seen = 0
        const got = await fetchToStore(store, a.url, {sha256: a.sha256, size: a.size}, {
          item: a.name,
          onProgress: (e) => {
            onData(e.done - seen)
            seen = e.done
          },
        })
        return got.fetched
      },
    })),
  }
}

interface Pending {
  promise: Promise<void>
  resolve(): void
  reject(err: unknown): void
  settled: boolean
  /** resolved, not rejected */
  ok: boolean
}

function pending(): Pending {
  const p = {settled: false, ok: false} as Pending
  p.promise = new Promise<void>((resolve, reject) => {
    p.resolve = () => {
      p.settled = true
      p.ok = true
      resolve()
    }
    p.reject = (err) => {
      p.settled = true
      reject(err)
    }
  })
  p.promise.catch(() => undefined)
  return p
}

/** Image blobs at least this large go straight into the archive when they can (see fetchAndWrite); configs stay loose. */
const DIRECT_MIN = 256 << 10

/**
 * True when a file written in `from` can be hard-linked into `to`: one file system, and one that
 * has hard links (FAT has none, and some FUSE file systems refuse writes past the end of a file).
 * Tried with an empty file rather than guessed.
 */
async function canLink(target: string, packs: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(dirname(target)), stat(packs)])
  if (x.dev !== y.dev) return false
  // Named as what a killed build leaves, so that a probe a kill left behind is cleaned up the same way.
  const probe = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`)
  const linked = join(packs, `${randomBytes(32).toString('hex')}.tar`)
  try {
    await writeFile(probe, '')
    await link(probe, linked)
    return true
  } catch {
    return false
  } finally {
    await rm(probe, {force: true})
    await rm(linked, {force: true})
  }
}

/** sha256 over the entries that come before the blobs: with the blob list, they fix every byte of the archive. */
function headDigest(entries: Omit<BundleEntries, 'blobs'>): string {
  const hash = createHash('sha256')
  for (const bytes of [entries.bundleJson, entries.signature, entries.indexJson]) hash.update(`${bytes.length}\n`).update(bytes)
  return hash.digest('hex')
}

/** Gives an archive the store keeps a second name, `target`, atomically (a hard link, then a rename). */
async function linkArchive(from: string, target: string, sha256: string, size: number): Promise<WrittenBundle> {
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`)
  try {
    await link(from, temp)
    await rename(temp, target)
    // (a rename onto another name of the same file does nothing: the temp name would stay)
    await rm(temp, {force: true})
    await syncDir(dirname(target))
  } catch (err) {
    await rm(temp, {force: true})
    throw asLocalIoError(err, `writing ${target}`)
  }
  return {path: target, sha256, size, verified: []}
}

/**
 * Fetches what the store lacks and writes the archive at the same time: the writer goes through
 * the blobs in archive order and takes each one as soon as it is there, while later ones are
 * still downloading. When a file in the output folder can be hard-linked into the store, image layers the
 * store lacks are downloaded straight into their place in the archive (one write of their bytes,
 * not two), and the finished bundle is then kept in the store as a pack (a hard link, see
 * packs.ts): that is how those layers enter the store. Everything else goes through the store.
 * The first failure on either side stops both; nothing is left behind.
 */
async function fetchAndWrite(target: string, entries: Omit<BundleEntries, 'blobs'>, files: {blobs: BlobFile[]; jobs: BlobJob[]}, images: PlannedImages, options: BuildOptions): Promise<{written: WrittenBundle; fetched: number; reused?: boolean}> {
  const store = options.store
  const direct = await canLink(target, store.packs.dir)
  const blobs = [...files.blobs, ...images.blobs].map((b) => ({...b}))
  const located = new Map<string, NonNullable<Awaited<ReturnType<BlobStore['locate']>>>>()
  for (const blob of blobs) {
    const at = await store.locate(blob.digest)
    if (!at || at.size !== blob.size) continue
    located.set(blob.digest, at)
    Object.assign(blob, {path: at.path, offset: at.offset, fresh: at.trusted})
  }
  const needed = (jobs: BlobJob[]) => jobs.filter((j) => !located.has(j.digest))
  const fileWork = needed(files.jobs)
  const imageWork = needed(images.jobs)
  const inPlace = new Set(direct ? imageWork.filter((j) => j.fetchInto && j.size >= DIRECT_MIN).map((j) => j.digest) : [])

  const waits = new Map<string, Pending>()
  for (const job of [...fileWork, ...imageWork]) if (!waits.has(job.digest)) waits.set(job.digest, pending())
  for (const blob of blobs) {
    const wait = waits.get(blob.digest)
    if (!wait) continue
    if (inPlace.has(blob.digest)) {
      blob.inPlace = true
      blob.ready = wait.promise
    } else {
      blob.ready = wait.promise.then(async () => {
        blob.fresh = await store.trusted(blob.digest)
      })
      blob.ready.catch(() => undefined)
    }
  }
  const layout = archiveLayout({...entries, blobs})
  const head = headDigest(entries)
  if (direct) {
    // The store keeps this very bundle already (the same lock built before): its bytes are these.
    const same = await store.packs.whole(head, layout.blobs)
    if (same) return {written: await linkArchive(same.path, target, same.id, same.size), fetched: 0, reused: true}
  }
  let opened: (archive: FileHandle) => void = () => undefined
  const archive = new Promise<FileHandle>((resolve) => (opened = resolve))

  const all = [...fileWork, ...imageWork]
  const total = all.reduce((n, j) => n + j.size, 0)
  let done = 0
  let lastReport = -Infinity
  let fetched = 0
  let fetching = all.length > 0
  let halted: {error: unknown} | undefined
  const report = (force = false) => {
    if (!options.onProgress || (!force && done - lastReport < 1 << 20)) return
    lastReport = done
    options.onProgress({phase: 'fetch', done, total})
  }
  const fetchOne = async (job: BlobJob, onData: (n: number) => void): Promise<number> => {
    if (!inPlace.has(job.digest)) return job.fetch(onData)
    const writer = BlobWriter.region(await archive, layout.offsets.get(job.digest)!, `${basename(target)} ${job.digest}`)
    try {
      return await job.fetchInto!(writer, onData)
    } finally {
      await writer.close()
    }
  }
  const run = (jobs: BlobJob[], limit: number) =>
    mapPool(jobs, limit, async (job) => {
      if (halted) throw halted.error
      let counted = 0
      try {
        fetched += await fetchOne(job, (n) => {
          counted += n
          done += n
          report()
        })
      } catch (err) {
        halted ??= {error: err}
        throw err
      }
      done += job.size - counted
      report()
      waits.get(job.digest)!.resolve()
    })
  const fetchAll = Promise.allSettled([run(fileWork, options.concurrency ?? 4), run(imageWork, options.imageJobs ?? 8)]).then((results) => {
    fetching = false
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    for (const wait of waits.values()) if (!wait.settled) wait.reject(failed?.reason ?? new Error('fetch stopped'))
    if (failed) throw failed.reason
    report(true)
  })
  // Writing trails the downloads: its progress is shown once they are done.
  const onWrite: ProgressListener = (e) => {
    if (!fetching) options.onProgress?.(e)
  }
  // A failed build keeps the layers it did download straight into the archive: the next run takes them from the store.
  const salvage = async (archive: FileHandle) => {
    for (const digest of inPlace) {
      if (!waits.get(digest)?.ok) continue
      const offset = layout.offsets.get(digest)!
      const size = layout.blobs.find((b) => b.digest === digest)!.size
      const bytes = archive.createReadStream({start: offset, end: offset + size - 1, autoClose: false, highWaterMark: 1 << 20})
      await store.ingest(bytes, {digest, size, what: `${basename(target)} ${digest}`}).catch(() => undefined)
    }
  }
  const writing = writeBundleArchive(target, {...entries, blobs}, onWrite, {onOpen: opened, onFail: salvage}).catch((err: unknown) => {
    halted ??= {error: err}
    throw err
  })
  const [f, w] = await Promise.allSettled([fetchAll, writing])
  // A download's failure is the cause of the writer's, when both failed.
  if (f.status === 'rejected') throw f.reason
  if (w.status === 'rejected') throw w.reason
  const written = w.value
  for (const digest of written.verified) store.markChecked(digest)
  if (direct) {
    const packed = await store.packs.add(written.path, written.sha256, head, layout.blobs.map((b) => ({digest: b.digest, offset: layout.offsets.get(b.digest)!, size: b.size})))
    if (!packed && inPlace.size > 0) {
      // A file system without hard links: the layers written straight into the bundle are copied into the store.
      const archive = await open(written.path, 'r')
      try {
        await salvage(archive)
      } finally {
        await archive.close()
      }
    }
  }
  // Later builds use these blobs as they are: flushed and sealed now that the bundle is out.
  await store.seal(blobs.map((b) => b.digest))
  return {written, fetched}
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
export async function buildBundle(lock: LockFile, options: BuildOptions): Promise<BuildResult> {
  const now = options.now ?? new Date()
  if (Date.parse(lock.expires) <= now.getTime()) {
    throw trustError('LOCK_EXPIRED', `the lock for ${lock.name} ${lock.version} expired at ${lock.expires}; run "ferry manifest lock" again`)
  }
  if (options.signers.length === 0) throw trustError('NO_SIGNER', 'a bundle must be signed: give --key FILE or --gpg-key FPR')
  await options.store.init()
  await mkdir(options.outDir, {recursive: true})
  const since = options.since
  const target = join(options.outDir, bundleFileName(lock.name, lock.version, since?.version))
  const lockFile = await acquirePidLock(`${target}.lock`, `building ${target}`)
  await removeAbandonedPartials(target)
  try {
    // A delta neither fetches nor carries what its base has.
    const omitted = since ? [...new Set(lock.artifacts.map((a) => `sha256:${a.sha256}`).filter((d) => since.has(d)))].sort() : []
    const carried = since ? {...lock, artifacts: lock.artifacts.filter((a) => !since.has(`sha256:${a.sha256}`))} : lock
    const plan = async () => ({
      files: fileJobs(carried, options),
      images: await planImages(lock, {store: options.store, registry: options.registry, skip: since ? (d) => since.has(d) : undefined}),
    })
    const first = await plan()
    const images = first.images
    if (images.omitted.length) omitted.splice(0, omitted.length, ...[...new Set([...omitted, ...images.omitted])].sort())
    const described = describeLock(lock)
    const indexJson = described.indexJson
    const manifest: BundleManifest = {
      ...described.manifest,
      ...(since ? {base: {name: since.name, version: since.version, digest: since.digest}, omitted} : {}),
      ...(options.rotation ? {rotation: options.rotation} : {}),
    }
    const bundleJson = serialise(manifest)
    const signedAt = new Date(lock.resolved)
    const parts = []
    for (const signer of options.signers) parts.push(await signer.sign(bundleJson, signedAt))
    const entries = {bundleJson, signature: Buffer.from(armorSignatures(parts)), indexJson}
    try {
      const {written, fetched, reused} = await fetchAndWrite(target, entries, first.files, first.images, options)
      return {...written, manifest, fetched, ...(reused ? {reused} : {})}
    } catch (err) {
      // A cached blob damaged on disk (a power cut before it was sealed): drop it, fetch it again, write once more.
      // One that moved (another build sharing the store replaced its pack): look for it again.
      const code = err instanceof FerryError ? err.code : undefined
      const damaged = code === 'STORE_CORRUPT' || code === 'STORE_MOVED' ? ((err as FerryError).data?.digests as string[] | undefined) : undefined
      if (!damaged) throw err
      if (code === 'STORE_CORRUPT') for (const digest of damaged) await options.store.evict(digest)
      options.store.packs.refresh()
      const again = await plan()
      const {written, fetched} = await fetchAndWrite(target, entries, again.files, again.images, options)
      return {...written, manifest, fetched}
    }
  } finally {
    await lockFile.release()
  }
}
