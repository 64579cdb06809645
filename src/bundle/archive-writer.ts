import {type FileHandle, open} from 'node:fs/promises'
import {writeFullyAt} from '../store/atomic-file.js'
import {remoteHash, returnSlab, takeSlab, type RemoteHash} from '../store/hash-pool.js'
import {integrityError} from '../errors.js'
import type {BlobFile} from './archive-entries.js'

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
export class ArchiveWriter {
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

