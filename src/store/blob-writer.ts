import {open, type FileHandle} from 'node:fs/promises'
import {asLocalIoError, FerryError, integrityError} from '../errors.js'
import type {ChunkParams} from '../chunks/params.js'
import {remoteHash, returnSlab, takeSlab, type RemoteHash} from './hash-pool.js'

/**
 * Bytes gathered before one write and one hash step. Incoming bytes go into a few reused slabs;
 * while one fills, the previous ones are written and hashed (on a worker thread) at once.
 */
const SLAB_BYTES = 512 << 10
const SLABS = 2
/** Chunking too: two threads take each slab (one hashes and writes, one cuts), so a few more keep both busy. */
const CHUNKING_SLABS = 4

export interface AppendOptions {
  /** refuse (SIZE_MISMATCH) as soon as the file would grow past this many bytes */
  maxSize?: number
  /** names the artifact in error messages */
  what?: string
  /** called with the byte count of each chunk as it is taken in (progress, idle timers) */
  onData?: (bytes: number) => void
}

export interface BlobWriterOptions {
  /** fsync the file in `finish` (default true) */
  durable?: boolean
}

/** Any failure to write a local file is exit 6, with the file named. */
function localWriteError(err: unknown, path: string): FerryError {
  const mapped = asLocalIoError(err, `cannot write ${path}`)
  if (mapped instanceof FerryError) return mapped
  const code = (err as NodeJS.ErrnoException).code ?? 'IO_ERROR'
  return new FerryError('io', `IO_${code.replace(/^IO_/, '')}`, `cannot write ${path}: ${(err as Error).message}`, {cause: err})
}

interface Slab {
  buffer: Buffer
  /** the write and the hash step of its last batch */
  busy: Promise<unknown>
  /** whether `busy` has settled */
  free: boolean
}

/**
 * Appends streamed bytes to one file while hashing them in the same pass. The hash always covers
 * exactly the bytes in the file, so a writer interrupted by its source can take more bytes later
 * (a resumed download). Chunks are copied in: their producer may reuse them once handed over.
 */
export class BlobWriter {
  private hash: RemoteHash = remoteHash()
  private hashed: boolean
  private broken?: unknown
  private bytes: number
  private slabs: Slab[] = []
  /** set by `chunkWith`: the bytes are cut into chunks as they are hashed */
  private chunking?: ChunkParams
  /** with `chunking`: cuts the same bytes into chunks on another thread, beside the hash */
  private cutter?: RemoteHash

  private constructor(
    /** where the bytes are being written */
    readonly path: string,
    private readonly handle: FileHandle,
    size: number,
    private readonly durable: boolean,
    /** where byte 0 goes in the file: non-zero for a region of a bigger file */
    private readonly base = 0,
    /** a region of a bigger file: never truncated, never synced here */
    private readonly region = false,
  ) {
    this.bytes = size
    this.hashed = size === 0
  }

  /**
   * Writes into a region of a bigger file (an archive being assembled): byte 0 goes to `base`.
   * The writer opens the file itself, so its writes (made by a hash thread, by descriptor) can
   * never outlive its own handle, whatever the file's owner does meanwhile. `finish` leaves the
   * file unsynced; `truncate` only starts the region over.
   */
  static async region(path: string, base: number, label: string): Promise<BlobWriter> {
    try {
      return new BlobWriter(label, await open(path, 'r+'), 0, false, base, true)
    } catch (err) {
      throw asLocalIoError(err, `cannot open ${path}`)
    }
  }

  /** Bytes in the file so far. */
  get size(): number {
    return this.bytes
  }

  /** Starts a new, empty file at `path` (which must not exist). */
  static async create(path: string, options: BlobWriterOptions = {}): Promise<BlobWriter> {
    try {
      return new BlobWriter(path, await open(path, 'wx'), 0, options.durable ?? true)
    } catch (err) {
      throw asLocalIoError(err, `cannot create ${path}`)
    }
  }

  /** Continues an existing file; its bytes are hashed (streamed) only when first needed. */
  static async resume(path: string, options: BlobWriterOptions = {}): Promise<BlobWriter> {
    const handle = await open(path, 'r+')
    const {size} = await handle.stat()
    return new BlobWriter(path, handle, size, options.durable ?? true)
  }

  private slab(index: number): Slab {
    this.slabs[index] ??= {buffer: takeSlab(SLAB_BYTES), busy: Promise.resolve(), free: true}
    return this.slabs[index]
  }

  /**
   * Cuts the file's bytes into content-defined chunks as they are hashed, in the same pass (kept
   * bytes of a resumed download included): `finish` then returns their records. Call before
   * appending; a writer whose hash has begun goes on without (`finish` returns no records).
   */
  chunkWith(params: ChunkParams): void {
    if (this.hash.size > 0) return
    this.chunking = params
    this.cutter = this.newCutter()
  }

  /** A chunker on another thread than the hash: cutting costs more than hashing, and the two run side by side. */
  private newCutter(): RemoteHash {
    const cutter = remoteHash({apart: this.hash})
    cutter.chunk(this.chunking!, {only: true})
    return cutter
  }

  /** The bytes kept from before (a resumed download) are read back and hashed by the hash thread. */
  private async ensureHashed(): Promise<void> {
    if (this.hashed) return
    const read = (hash: RemoteHash) =>
      hash.updateFromFile(this.handle.fd, this.base, this.bytes).catch((err: Error & {code?: string}) => {
        if (err.code) throw err
        throw new Error(`${this.path} changed size while being read (${this.bytes} bytes expected): ${err.message}`)
      })
    await Promise.all([read(this.hash), this.cutter && read(this.cutter)])
    this.hashed = true
  }

  /** Takes in every chunk of `source`, writing and hashing; returns the number of bytes added. */
  async append(source: AsyncIterable<Uint8Array>, options: AppendOptions = {}): Promise<number> {
    if (this.broken) throw this.broken
    await this.ensureHashed()
    const start = this.size
    let written = this.bytes
    let turn = 0
    let slab = this.slab(turn)
    let fill = 0

    // Hands the filled part of the current slab to a write and a hash step and moves to the next
    // slab; returns what to wait for before filling that one, if it is still busy.
    const dispatch = (): Promise<void> | undefined => {
      if (fill > 0) {
        const view = slab.buffer.subarray(0, fill)
        const at = written
        written += fill
        fill = 0
        // hashed and written by the hash thread, in one step (and cut into chunks on another)
        const stored = this.hash.updateAndWrite(view, this.handle.fd, this.base + at)
        const step = (this.cutter ? Promise.all([stored, this.cutter.update(view)]) : stored).catch((err: unknown) => {
          // The file no longer matches the hash: this writer can only be discarded.
          this.broken ??= (err as NodeJS.ErrnoException).code ? localWriteError(err, this.path) : err
          throw this.broken
        })
        const done = slab
        done.free = false
        done.busy = step
        done.busy.then(
          () => (done.free = true),
          () => (done.free = true),
        )
        turn = (turn + 1) % (this.cutter ? CHUNKING_SLABS : SLABS)
        slab = this.slab(turn)
      }
      if (this.broken) throw this.broken
      if (slab.free) return undefined
      return slab.busy.then(() => {
        if (this.broken) throw this.broken
      })
    }
    const take = (n: number) => {
      if (options.maxSize !== undefined && this.size + n > options.maxSize) {
        throw integrityError(
          'SIZE_MISMATCH',
          `${options.what ?? this.path}: size mismatch: expected ${options.maxSize} bytes, got more; the source does not hold the expected content`,
          {expected: options.maxSize},
        )
      }
      this.bytes += n
      options.onData?.(n)
    }

    try {
      await slab.busy
      for await (const chunk of source) {
        const n = chunk.byteLength
        take(n)
        let taken = 0
        while (taken < n) {
          const step = Math.min(n - taken, SLAB_BYTES - fill)
          slab.buffer.set(step === n ? chunk : chunk.subarray(taken, taken + step), fill)
          fill += step
          taken += step
          if (fill === SLAB_BYTES) await dispatch()
        }
      }
    } finally {
      // Whatever stopped the source, every byte taken in reaches both the file and the hash.
      await Promise.resolve()
        .then(dispatch)
        .catch(() => undefined)
      await Promise.all(this.slabs.map((s) => s.busy)).catch(() => undefined)
    }
    if (this.broken) throw this.broken
    return this.size - start
  }

  /** Empties the file to start over (the source restarted from byte 0). */
  async truncate(): Promise<void> {
    if (this.broken) throw this.broken
    if (!this.region) await this.handle.truncate(0)
    this.hash.drop()
    this.cutter?.drop()
    this.hash = remoteHash()
    if (this.chunking) this.cutter = this.newCutter()
    this.bytes = 0
    this.hashed = true
  }

  /**
   * Flushes the file to disk (when durable) and closes it; returns the digest and size of its whole
   * content, and with `chunkWith`, its chunk records (36 bytes each, see chunks/index-format.ts).
   */
  async finish(): Promise<{digest: string; size: number; chunks?: Buffer}> {
    if (this.broken) throw this.broken
    await this.ensureHashed()
    const [digest] = await Promise.all([this.hash.digest(), this.cutter?.digest()])
    try {
      if (this.durable) await this.handle.sync()
      await this.handle.close()
    } catch (err) {
      throw localWriteError(err, this.path)
    } finally {
      this.release()
    }
    const chunks = this.cutter?.records
    return chunks ? {digest, size: this.size, chunks} : {digest, size: this.size}
  }

  /** Closes the file without syncing (it is about to be parked or removed). */
  async close(): Promise<void> {
    await Promise.all(this.slabs.map((s) => s.busy)).catch(() => undefined)
    this.hash.drop()
    this.cutter?.drop()
    this.release()
    await this.handle.close().catch(() => undefined)
  }

  private release(): void {
    for (const s of this.slabs) returnSlab(s.buffer)
    this.slabs = []
  }
}
