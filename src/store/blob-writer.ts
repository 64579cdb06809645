import {open, type FileHandle} from 'node:fs/promises'
import {asLocalIoError, FerryError, integrityError} from '../ui/errors.js'
import {hashFileInto, READ_CHUNK, Sha256Counter} from './hashing.js'

/** Bytes gathered before one write: large writes, and hashing of the next batch overlaps the write in flight. */
const BATCH_BYTES = READ_CHUNK
/** Keeps a batch of tiny chunks well under the kernel's iovec limit. */
const BATCH_BUFFERS = 256

export interface AppendOptions {
  /** refuse (SIZE_MISMATCH) as soon as the file would grow past this many bytes */
  maxSize?: number
  /** names the artifact in error messages */
  what?: string
  /** called with the byte count of each chunk as it is taken in (progress, idle timers) */
  onData?: (bytes: number) => void
}

/** Any failure to write a local file is exit 6, with the file named. */
function localWriteError(err: unknown, path: string): FerryError {
  const mapped = asLocalIoError(err, `cannot write ${path}`)
  if (mapped instanceof FerryError) return mapped
  const code = (err as NodeJS.ErrnoException).code ?? 'IO_ERROR'
  return new FerryError('io', `IO_${code.replace(/^IO_/, '')}`, `cannot write ${path}: ${(err as Error).message}`, {cause: err})
}

async function writeAll(handle: FileHandle, buffers: Uint8Array[], position: number): Promise<void> {
  let pending = buffers
  let at = position
  for (;;) {
    const total = pending.reduce((n, b) => n + b.byteLength, 0)
    const {bytesWritten} = await handle.writev(pending, at)
    if (bytesWritten === total) return
    if (bytesWritten === 0) throw Object.assign(new Error('the file system accepted no bytes'), {code: 'EIO'})
    // A short write (rare: a filling disk) leaves a tail to retry; the next attempt reports the real error.
    at += bytesWritten
    let skip = bytesWritten
    const rest: Uint8Array[] = []
    for (const b of pending) {
      if (skip >= b.byteLength) {
        skip -= b.byteLength
        continue
      }
      rest.push(skip > 0 ? b.subarray(skip) : b)
      skip = 0
    }
    pending = rest
  }
}

/**
 * Appends streamed bytes to one file while hashing them in the same pass. The hash always covers
 * exactly the bytes in the file, so a writer interrupted by its source can take more bytes later
 * (a resumed download). Chunks handed in must not be changed by their producer afterwards.
 */
export class BlobWriter {
  private counter = new Sha256Counter()
  private hashed: boolean
  private broken?: unknown
  private bytes: number

  private constructor(
    /** where the bytes are being written */
    readonly path: string,
    private readonly handle: FileHandle,
    size: number,
  ) {
    this.bytes = size
    this.hashed = size === 0
  }

  /** Bytes in the file so far. */
  get size(): number {
    return this.bytes
  }

  /** Starts a new, empty file at `path` (which must not exist). */
  static async create(path: string): Promise<BlobWriter> {
    try {
      return new BlobWriter(path, await open(path, 'wx'), 0)
    } catch (err) {
      throw asLocalIoError(err, `cannot create ${path}`)
    }
  }

  /** Continues an existing file; its bytes are hashed (streamed) only when first needed. */
  static async resume(path: string): Promise<BlobWriter> {
    const handle = await open(path, 'r+')
    const {size} = await handle.stat()
    return new BlobWriter(path, handle, size)
  }

  private async ensureHashed(): Promise<void> {
    if (this.hashed) return
    await hashFileInto(this.counter, this.path)
    if (this.counter.size !== this.bytes) throw new Error(`${this.path} changed size while being read (${this.counter.size} of ${this.size} bytes)`)
    this.hashed = true
  }

  /** Takes in every chunk of `source`, writing and hashing; returns the number of bytes added. */
  async append(source: AsyncIterable<Uint8Array>, options: AppendOptions = {}): Promise<number> {
    if (this.broken) throw this.broken
    await this.ensureHashed()
    const start = this.size
    let written = this.bytes
    let batch: Uint8Array[] = []
    let batchBytes = 0
    let inFlight: Promise<void> | undefined

    const flush = async (): Promise<void> => {
      const previous = inFlight
      inFlight = undefined
      await previous
      if (this.broken) throw this.broken
      if (batchBytes === 0) return
      const buffers = batch
      const at = written
      written += batchBytes
      batch = []
      batchBytes = 0
      inFlight = writeAll(this.handle, buffers, at).catch((err: unknown) => {
        // The file no longer matches the hash: this writer can only be discarded.
        this.broken = localWriteError(err, this.path)
        throw this.broken
      })
      // Awaited by the next flush or the final drain; marked handled so a failure between the two is not reported twice.
      inFlight.catch(() => undefined)
    }

    try {
      for await (const chunk of source) {
        const n = chunk.byteLength
        if (options.maxSize !== undefined && this.size + n > options.maxSize) {
          throw integrityError(
            'SIZE_MISMATCH',
            `${options.what ?? this.path}: size mismatch: expected ${options.maxSize} bytes, got more; the source does not hold the expected content`,
            {expected: options.maxSize},
          )
        }
        this.counter.update(chunk)
        this.bytes += n
        batch.push(chunk)
        batchBytes += n
        options.onData?.(n)
        if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_BUFFERS) await flush()
      }
    } finally {
      // Whatever stopped the source, every hashed byte reaches the file, so the pair stays consistent.
      await flush()
      await flush()
    }
    return this.size - start
  }

  /** Empties the file to start over (the source restarted from byte 0). */
  async truncate(): Promise<void> {
    if (this.broken) throw this.broken
    await this.handle.truncate(0)
    this.counter = new Sha256Counter()
    this.bytes = 0
    this.hashed = true
  }

  /** Flushes the file to disk and closes it; returns the digest and size of its whole content. */
  async finish(): Promise<{digest: string; size: number}> {
    if (this.broken) throw this.broken
    await this.ensureHashed()
    try {
      await this.handle.sync()
      await this.handle.close()
    } catch (err) {
      throw localWriteError(err, this.path)
    }
    return {digest: this.counter.digest(), size: this.size}
  }

  /** Closes the file without syncing (it is about to be parked or removed). */
  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined)
  }
}
