import {createHash, type Hash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {Transform, type TransformCallback} from 'node:stream'
import {FerryError} from '../errors.js'

/** Read size for hashing files: big reads keep per-call overhead far below the cost of hashing. */
export const READ_CHUNK = 1 << 20

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/

/** True when `text` is a digest in Ferry's form, `sha256:<64 lowercase hex>`. */
export function isDigest(text: string): boolean {
  return DIGEST_RE.test(text)
}

/**
 * Normalises `sha256:<hex>` or a bare 64-hex string (any case) into `sha256:<hex>`;
 * anything else is a usage error naming `what`.
 */
export function toDigest(text: string, what = 'digest'): string {
  const lower = text.trim().toLowerCase()
  const digest = lower.startsWith('sha256:') ? lower : `sha256:${lower}`
  if (!DIGEST_RE.test(digest)) throw new FerryError('usage', 'BAD_DIGEST', `${what}: "${text}" is not a sha256 digest (expected sha256:<64 hex digits>)`)
  return digest
}

/** The digest of bytes in memory, `sha256:<hex>`. */
export function sha256Of(bytes: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

/** The hex part of a `sha256:<hex>` digest. */
export function digestHex(digest: string): string {
  return toDigest(digest).slice('sha256:'.length)
}

/** An incremental sha256 that also counts bytes. */
export class Sha256Counter {
  private hash: Hash = createHash('sha256')
  size = 0

  update(chunk: Uint8Array): void {
    this.hash.update(chunk)
    this.size += chunk.byteLength
  }

  /** Finishes the hash; `sha256:<hex>`. Call once. */
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`
  }
}

/** A pass-through stream that hashes and counts what flows through it; read `digest()` after it ends. */
export class HashingStream extends Transform {
  private readonly counter = new Sha256Counter()
  private result?: string

  constructor() {
    super({readableHighWaterMark: READ_CHUNK, writableHighWaterMark: READ_CHUNK})
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.counter.size
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.counter.update(chunk)
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    this.result = this.counter.digest()
    callback()
  }

  /** `sha256:<hex>` of everything that passed; only valid once the stream has ended. */
  digest(): string {
    if (this.result === undefined) throw new Error('HashingStream.digest() called before the stream ended')
    return this.result
  }
}

/** Feeds a file's bytes (streamed, 1 MiB reads) into `counter`. */
export async function hashFileInto(counter: Sha256Counter, path: string): Promise<void> {
  for await (const chunk of createReadStream(path, {highWaterMark: READ_CHUNK})) counter.update(chunk as Buffer)
}

/** sha256 and size of a file, streamed with 1 MiB reads. */
export async function sha256File(path: string): Promise<{digest: string; size: number}> {
  const counter = new Sha256Counter()
  await hashFileInto(counter, path)
  return {digest: counter.digest(), size: counter.size}
}
