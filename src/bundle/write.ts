import {randomBytes} from 'node:crypto'
import {type FileHandle, mkdir, open, readdir, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {syncDir, writeFullyAt} from '../store/atomic-file.js'
import {remoteHash, returnSlab, takeSlab, type RemoteHash} from '../store/hash-pool.js'
import {asLocalIoError, integrityError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {ENTRY, OCI_LAYOUT_BYTES} from './format.js'
import {END_OF_ARCHIVE, entryLength, fileHeader, padding} from './tar-writer.js'

export interface BlobFile {
  digest: string
  size: number
  /** where the bytes are on disk (the blob store, or a pack) */
  path: string
  /** where they start in that file; default 0 */
  offset?: number
  /**
   * the bytes are written into the archive at their place by someone else (a download) before
   * `ready` settles: the writer only reads them back to hash the archive
   */
  inPlace?: boolean
  /** the bytes were hashed against `digest` already (this process, or a sealed store blob): no need to hash them again */
  fresh?: boolean
  /**
   * settles when the blob is in place (it is still being fetched while the archive is written);
   * `fresh` is read after it
   */
  ready?: Promise<unknown>
}

export interface BundleEntries {
  bundleJson: Buffer
  signature: Buffer
  indexJson: Buffer
  blobs: BlobFile[]
}

export interface WrittenBundle {
  path: string
  sha256: string
  size: number
  /** blobs that were hashed on their way in and matched */
  verified: string[]
}

/** Total archive size, known before writing: used for free-space checks and progress. */
export function archiveSize(entries: BundleEntries): number {
  let size = entryLength(ENTRY.manifest, entries.bundleJson.length)
  size += entryLength(ENTRY.signature, entries.signature.length)
  size += entryLength(ENTRY.layout, Buffer.byteLength(OCI_LAYOUT_BYTES))
  size += entryLength(ENTRY.index, entries.indexJson.length)
  for (const b of entries.blobs) size += entryLength(ENTRY.blobPrefix + hexOf(b.digest), b.size)
  return size + END_OF_ARCHIVE.length
}

const hexOf = (digest: string) => digest.slice('sha256:'.length)

/** Archive bytes gathered before one write and one hash step. */
const SLAB_BYTES = 1 << 20
/** Slabs in the ring: one filling while the others are written and hashed. */
const SLABS = 4

interface Slab {
  buffer: Buffer
  /** its write and hash steps */
  busy: Promise<unknown>
}

/**
 * Copies entries into the archive through a ring of reused slabs: the next one is filled (small
 * entries copied in, blob files read in) while the previous ones are written at their offset and
 * hashed on worker threads. No per-chunk garbage, and reading, writing and hashing overlap.
 * A blob the store did not check in this process is hashed again on its way in: a store file
 * damaged by a crash is reported, never written into a signed bundle unnoticed.
 */
class ArchiveWriter {
  private readonly slabs: Slab[] = []
  private turn = 0
  private fill = 0
  private failed?: unknown
  private readonly hash: RemoteHash = remoteHash({long: true})
  private readonly checks: Array<Promise<string | undefined>> = []
  /** blobs hashed on their way in that matched their digest */
  readonly verified: string[] = []
  /** blob checks reading the current slab */
  private steps: Array<Promise<unknown>> = []
  /** in-place blobs the hash thread is reading back */
  private readonly readBacks: Array<Promise<void>> = []
  /** bytes handed to the archive so far */
  written = 0

  /** bytes in the slab being filled, not yet handed over */
  get pending(): number {
    return this.fill
  }

  constructor(
    private readonly out: FileHandle,
    private readonly onChunk: () => void,
  ) {}

  private async current(): Promise<Slab> {
    this.slabs[this.turn] ??= {buffer: takeSlab(SLAB_BYTES), busy: Promise.resolve()}
    const slab = this.slabs[this.turn]
    if (this.fill === 0) await slab.busy
    if (this.failed) throw this.failed
    return slab
  }

  /** Writes and hashes the filled part of the current slab, which `steps` may be reading too. */
  private dispatch(): void {
    const slab = this.slabs[this.turn]
    const view = slab.buffer.subarray(0, this.fill)
    const at = this.written
    this.written += this.fill
    this.fill = 0
    this.turn = (this.turn + 1) % SLABS
    const steps = this.steps
    this.steps = []
    // Written through the thread pool, beside the hash thread: the archive's one hash is the
    // longest chain of work when every blob is copied from the store, so it does nothing else.
    slab.busy = Promise.all([writeFullyAt(this.out, view, at), this.hash.update(view), ...steps]).catch((err: unknown) => {
      this.failed ??= err
    })
    this.onChunk()
  }

  async put(bytes: Buffer): Promise<void> {
    let taken = 0
    while (taken < bytes.length) {
      const slab = await this.current()
      const step = Math.min(bytes.length - taken, SLAB_BYTES - this.fill)
      bytes.copy(slab.buffer, this.fill, taken, taken + step)
      this.fill += step
      taken += step
      if (this.fill === SLAB_BYTES) this.dispatch()
    }
  }

  /**
   * Hashes a blob's bytes that a download put at their place in the archive, once it is done: the
   * hash thread reads them back itself, after the slabs handed to it before.
   */
  async hashInPlace(blob: BlobFile): Promise<void> {
    if (blob.ready) await blob.ready
    if (this.failed) throw this.failed
    if (this.fill > 0) this.dispatch()
    const at = this.written
    this.written += blob.size
    this.readBacks.push(
      this.hash.updateFromFile(this.out.fd, at, blob.size).catch((err: unknown) => {
        this.failed ??= err
      }),
    )
    this.onChunk()
  }

  async copyFile(blob: BlobFile): Promise<void> {
    if (blob.ready) await blob.ready
    const input = await open(blob.path, 'r').catch((err: NodeJS.ErrnoException) => {
      // Another build sharing the store replaced the pack (or file) between planning and now.
      if (err.code === 'ENOENT') throw integrityError('STORE_MOVED', `blob ${blob.digest} left the store while this build ran; build again`, {digests: [blob.digest]})
      throw err
    })
    const base = blob.offset ?? 0
    const check = blob.fresh ? undefined : remoteHash()
    try {
      // The store is a cache another process could touch: never write an entry whose length is wrong.
      const size = (await input.stat()).size - base
      let copied = 0
      while (copied < blob.size && size >= blob.size) {
        const slab = await this.current()
        const start = this.fill
        const {bytesRead} = await input.read(slab.buffer, start, Math.min(SLAB_BYTES - start, blob.size - copied), base + copied)
        if (bytesRead === 0) break
        copied += bytesRead
        this.fill += bytesRead
        if (check) this.steps.push(check.update(slab.buffer.subarray(start, start + bytesRead)))
        if (this.fill === SLAB_BYTES) this.dispatch()
      }
      if ((base === 0 ? size !== blob.size : size < blob.size) || copied !== blob.size) {
        throw integrityError('STORE_CHANGED', `blob ${blob.digest} in the store is ${size} bytes, expected ${blob.size}; remove it from the store and build again`)
      }
      if (check) {
        const result = check.digest().then((d) => {
          if (d !== blob.digest) return blob.digest
          this.verified.push(blob.digest)
          return undefined
        })
        result.catch(() => undefined)
        this.checks.push(result)
      }
    } catch (err) {
      check?.drop()
      throw err
    } finally {
      await input.close()
    }
  }

  /** Waits for every write and hash; the archive's sha256, or STORE_CORRUPT naming the damaged blobs. */
  async finish(): Promise<string> {
    if (this.fill > 0) this.dispatch()
    await Promise.all([...this.slabs.map((s) => s.busy), ...this.readBacks])
    const corrupt = (await Promise.all(this.checks)).filter((d): d is string => d !== undefined)
    if (this.failed) throw this.failed
    for (const s of this.slabs) returnSlab(s.buffer)
    if (corrupt.length) {
      throw integrityError('STORE_CORRUPT', `blob store: ${corrupt.join(', ')} no longer match their digest; remove them from the store and build again`, {digests: corrupt})
    }
    return this.hash.digest()
  }

  /** Stops after a failure: waits for what is in flight so no slab is reused while read. */
  async abandon(): Promise<void> {
    await Promise.all([...this.slabs.map((s) => s.busy), ...this.readBacks, ...this.steps.map((p) => p.catch(() => undefined))])
    this.hash.drop()
  }
}

/** The blobs in archive order (by digest, each once) and where each one's bytes start in the archive. */
export function archiveLayout(entries: BundleEntries): {blobs: BlobFile[]; offsets: Map<string, number>} {
  let at = 0
  for (const [name, bytes] of smallEntries(entries)) at += entryLength(name, bytes.length)
  const blobs: BlobFile[] = []
  const offsets = new Map<string, number>()
  for (const blob of [...entries.blobs].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))) {
    if (offsets.has(blob.digest)) continue
    const name = ENTRY.blobPrefix + hexOf(blob.digest)
    offsets.set(blob.digest, at + fileHeader(name, blob.size).length)
    at += entryLength(name, blob.size)
    blobs.push(blob)
  }
  return {blobs, offsets}
}

function smallEntries(entries: Omit<BundleEntries, 'blobs'>): Array<[string, Buffer]> {
  return [
    [ENTRY.manifest, entries.bundleJson],
    [ENTRY.signature, entries.signature],
    [ENTRY.layout, Buffer.from(OCI_LAYOUT_BYTES)],
    [ENTRY.index, entries.indexJson],
  ]
}

async function writeEntries(writer: ArchiveWriter, entries: BundleEntries): Promise<void> {
  for (const [name, bytes] of smallEntries(entries)) {
    await writer.put(Buffer.concat([fileHeader(name, bytes.length), bytes, padding(bytes.length)]))
  }
  const {blobs, offsets} = archiveLayout(entries)
  for (const blob of blobs) {
    await writer.put(fileHeader(ENTRY.blobPrefix + hexOf(blob.digest), blob.size))
    if (blob.inPlace) {
      if (writer.written + writer.pending !== offsets.get(blob.digest)) throw new Error(`archive layout: ${blob.digest} is not where it was planned`)
      await writer.hashInPlace(blob)
    } else {
      await writer.copyFile(blob)
    }
    await writer.put(padding(blob.size))
  }
  await writer.put(END_OF_ARCHIVE)
}

/**
 * Removes temp files a killed build of `target` left behind. Call it holding the build lock of
 * `target`: then no live build owns them.
 */
export async function removeAbandonedPartials(target: string): Promise<void> {
  const prefix = `.${basename(target)}.`
  const names = await readdir(dirname(target)).catch(() => [] as string[])
  for (const name of names) {
    if (name.startsWith(prefix) && name.endsWith('.partial')) await rm(join(dirname(target), name), {force: true})
  }
}

/**
 * Writes the bundle archive to `target` atomically: a temp file in the same
 * folder, hashed while written, fsynced, then renamed. A failed or killed
 * write leaves no file with the final name.
 */
export interface ArchiveHooks {
  /** the temp file was opened: blobs marked `inPlace` may be written into it from now on */
  onOpen?: (archive: FileHandle, path: string) => void
  /** the write failed; the temp file is still open and about to be removed */
  onFail?: (archive: FileHandle) => Promise<void>
}

export async function writeBundleArchive(target: string, entries: BundleEntries, onProgress?: ProgressListener, hooks: ArchiveHooks = {}): Promise<WrittenBundle> {
  const dir = dirname(target)
  await mkdir(dir, {recursive: true})
  const temp = join(dir, `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`)
  const total = archiveSize(entries)
  let lastReport = 0
  let writer: ArchiveWriter | undefined
  let sha256: string
  try {
    // Read back too: blobs downloaded into their place are hashed from here.
    const out = await open(temp, 'wx+', 0o644)
    hooks.onOpen?.(out, temp)
    try {
      writer = new ArchiveWriter(out, () => {
        if (onProgress && writer!.written - lastReport >= 8 << 20) {
          lastReport = writer!.written
          onProgress({phase: 'write', item: basename(target), done: writer!.written, total})
        }
      })
      try {
        try {
          await writeEntries(writer, entries)
        } catch (err) {
          await writer.abandon()
          throw err
        }
        sha256 = (await writer.finish()).slice('sha256:'.length)
        await out.sync()
      } catch (err) {
        // before the temp file goes: the caller may keep what is good in it
        await hooks.onFail?.(out).catch(() => undefined)
        throw err
      }
    } finally {
      await out.close()
    }
    await rename(temp, target)
    await syncDir(dir)
  } catch (err) {
    await rm(temp, {force: true})
    throw asLocalIoError(err, `writing ${target}`)
  }
  onProgress?.({phase: 'write', item: basename(target), done: writer.written, total})
  return {path: target, sha256, size: writer.written, verified: writer.verified}
}
