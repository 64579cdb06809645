// Assembling a bundle: fetching what the store lacks while the archive is written, straight into
// the archive where it can, and keeping the result in the store as a pack (see fetchAndWrite).
import {createHash, randomBytes} from 'node:crypto'
import {type FileHandle, link, open, rename, rm, stat, writeFile} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import type {LockFile} from '../manifest/lock-format.js'
import {fetchInto, fetchToStore} from '../sources/http.js'
import {mapPool} from '../sources/pool.js'
import {syncDir} from '../store/atomic-file.js'
import type {BlobStore} from '../store/blob-store.js'
import {BlobWriter} from '../store/blob-writer.js'
import {asLocalIoError, ExitCode, FerryError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import type {BuildOptions} from './build-options.js'
import type {BlobJob, PlannedImages} from './images.js'
import {archiveLayout, type BlobFile, type BundleEntries, writeBundleArchive, type WrittenBundle} from './write.js'

/** The lock's files (everything but images) as blobs of the bundle and jobs that fetch them. */
export function fileJobs(lock: LockFile, options: BuildOptions): {blobs: BlobFile[]; jobs: BlobJob[]} {
  // Images are planned by planImages: their digest names a manifest, not one file to download.
  const files = lock.artifacts.filter((a) => a.kind !== 'image').sort((x, y) => (x.sha256 < y.sha256 ? -1 : 1))
  const store = options.store
  return {
    blobs: files.map((a) => ({digest: `sha256:${a.sha256}`, size: a.size, path: store.pathOf(`sha256:${a.sha256}`)})),
    jobs: files.map((a) => {
      // progress events carry totals; jobs report the bytes of each step
      const steps = (onData: (bytes: number) => void) => {
        let seen = 0
        return {
          item: a.name,
          onProgress: (e: {done: number}) => {
            onData(e.done - seen)
            seen = e.done
          },
        }
      }
      return {
        digest: `sha256:${a.sha256}`,
        size: a.size,
        fetch: async (onData) => (await fetchToStore(store, a.url, {sha256: a.sha256, size: a.size}, steps(onData))).fetched,
        // Very large files (VM images) go through the store, where a download cut by a kill is kept for the next run.
        ...(a.size < (options.directFilesBelow ?? DIRECT_FILE_MAX) ? {fetchInto: (writer: BlobWriter, onData: (bytes: number) => void) => fetchInto(writer, a.url, {sha256: a.sha256, size: a.size}, steps(onData))} : {}),
      }
    }),
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

/** Blobs (image layers, files) at least this large go straight into the archive when they can (see fetchAndWrite); configs stay loose. */
const DIRECT_MIN = 256 << 10
/** Files this large or larger are fetched through the store even then: a download cut by a kill is kept there. */
const DIRECT_FILE_MAX = 2 ** 30

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
 * still downloading. When a file in the output folder can be hard-linked into the store, image
 * layers and files (below DIRECT_FILE_MAX) the store lacks are downloaded straight into their
 * place in the archive (one write of their bytes, not two), and the finished bundle is then kept
 * in the store as a pack (a hard link, see packs.ts): that is how those blobs enter the store.
 * Everything else goes through the store.
 * The first failure on either side stops both; nothing is left behind.
 */
export async function fetchAndWrite(target: string, entries: Omit<BundleEntries, 'blobs'>, files: {blobs: BlobFile[]; jobs: BlobJob[]}, images: PlannedImages, options: BuildOptions): Promise<{written: WrittenBundle; fetched: number; reused?: boolean}> {
  const store = options.store
  const direct = await canLink(target, store.packs.dir)
  const blobs = [...files.blobs, ...images.blobs].map((b) => ({...b}))
  const layout = archiveLayout({...entries, blobs})
  const head = headDigest(entries)
  if (direct) {
    // The store keeps this very bundle already (the same lock built before): its bytes are these.
    const same = await store.packs.whole(head, layout.blobs)
    if (same) return {written: await linkArchive(same.path, target, same.id, same.size), fetched: 0, reused: true}
  }
  const located = new Map<string, NonNullable<Awaited<ReturnType<BlobStore['locate']>>>>()
  for (const blob of blobs) {
    const at = await store.locate(blob.digest)
    if (!at || at.size !== blob.size) continue
    located.set(blob.digest, at)
    Object.assign(blob, {path: at.path, offset: at.offset, fresh: at.trusted})
  }
  // In archive order: the writer and the archive's hash follow close behind the downloads.
  const needed = (jobs: BlobJob[]) => jobs.filter((j) => !located.has(j.digest)).sort((x, y) => layout.offsets.get(x.digest)! - layout.offsets.get(y.digest)!)
  const fileWork = needed(files.jobs)
  const imageWork = needed(images.jobs)
  // A download an interrupted build parked in the store resumes there, not from byte 0 in the archive.
  const parked = new Set<string>()
  for (const j of [...fileWork, ...imageWork]) if (await stat(store.partialPath(j.digest)).catch(() => undefined)) parked.add(j.digest)
  const inPlace = new Set(direct ? [...fileWork, ...imageWork].filter((j) => j.fetchInto && j.size >= DIRECT_MIN && !parked.has(j.digest)).map((j) => j.digest) : [])
  /** bytes each in-place download had written when it stopped */
  const reached = new Map<string, number>()
  // downloads whose bytes proved wrong: never kept for a later run to resume
  const corrupt = new Set<string>()

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
  // where the archive is being written: downloads open it themselves to write their regions. If the
  // archive cannot be opened at all, the downloads waiting for it stop with the writer's error.
  let opened: (archive: FileHandle, path: string) => void = () => undefined
  let notOpened: (err: unknown) => void = () => undefined
  const archivePath = new Promise<string>((resolve, reject) => {
    opened = (_archive, path) => resolve(path)
    notOpened = reject
  })
  archivePath.catch(() => undefined)

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
    const writer = await BlobWriter.region(await archivePath, layout.offsets.get(job.digest)!, `${basename(target)} ${job.digest}`)
    try {
      return await job.fetchInto!(writer, onData)
    } finally {
      await writer.close()
      reached.set(job.digest, writer.size)
    }
  }
  const run = (jobs: BlobJob[], limit: number) =>
    mapPool(jobs, limit, async (job) => {
      if (halted) throw halted.error
      let counted = 0
      try {
        // (not `fetched += await …`: that reads `fetched` before the wait, and parallel jobs would undo each other's counts)
        const got = await fetchOne(job, (n) => {
          counted += n
          done += n
          report()
        })
        fetched += got
      } catch (err) {
        if (err instanceof FerryError && err.exit === ExitCode.integrity) corrupt.add(job.digest)
        halted ??= {error: err}
        throw err
      }
      done += job.size - counted
      report()
      waits.get(job.digest)!.resolve()
    })
  const fetchAll = Promise.allSettled([run(fileWork, options.concurrency ?? 4), run(imageWork, options.imageJobs ?? 4)]).then((results) => {
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
  // A failed build keeps the layers it did download straight into the archive: the next run takes
  // them from the store, and resumes (Range) those a stop or a failure cut short from the partial/ folder.
  const salvage = async (archive: FileHandle) => {
    await fetchAll.catch(() => undefined)
    for (const digest of inPlace) {
      const offset = layout.offsets.get(digest)!
      const size = waits.get(digest)?.ok ? layout.blobs.find((b) => b.digest === digest)!.size : (reached.get(digest) ?? 0)
      if (size === 0 || corrupt.has(digest)) continue
      const bytes = archive.createReadStream({start: offset, end: offset + size - 1, autoClose: false, highWaterMark: 1 << 20})
      const what = `${basename(target)} ${digest}`
      await (waits.get(digest)?.ok ? store.ingest(bytes, {digest, size, what}) : store.keepPartial(bytes, digest)).catch(() => undefined)
    }
  }
  const writing = writeBundleArchive(target, {...entries, blobs}, onWrite, {onOpen: opened, onFail: salvage}).catch((err: unknown) => {
    halted ??= {error: err}
    notOpened(err)
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
