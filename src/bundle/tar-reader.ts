import {Header} from 'tar/header'
import {Pax} from 'tar/pax'
import {integrityError} from '../errors.js'
import {throwIfInterrupted} from '../interrupt.js'

const BLOCK = 512

export interface TarEntry {
  path: string
  size: number
  type: 'File' | 'Directory'
  /** where the entry's bytes start in the archive */
  offset: number
  /** The entry's bytes, exactly `size` of them; must be consumed before the next entry is read. */
  body: AsyncGenerator<Buffer>
}

export interface TarReaderOptions {
  /** largest entry accepted (bytes) */
  maxEntrySize?: number
  /** called with the archive bytes consumed so far */
  onBytes?: (consumed: number) => void
}

/**
 * Reads a tar stream defensively, one entry at a time: only regular files and
 * directories, relative paths without `..`, checksummed headers, exact sizes,
 * and a clear error when the archive is truncated. Pax records may set `path`
 * and `size` only. Memory stays at one input chunk.
 */
export async function* readTar(input: AsyncIterable<Buffer | Uint8Array>, options: TarReaderOptions = {}): AsyncGenerator<TarEntry> {
  const source = new ChunkSource(input, options.onBytes)
  const maxSize = options.maxEntrySize ?? Number.MAX_SAFE_INTEGER
  let pax: Record<string, string | number | undefined> | undefined
  try {
    while (true) {
      const block = await source.read(BLOCK)
      if (block.length < BLOCK) {
        if (block.length === 0) throw integrityError('TRUNCATED', 'the archive ends without its end-of-archive marker (truncated)')
        throw integrityError('TRUNCATED', 'the archive is truncated in the middle of a header')
      }
      if (isZero(block)) {
        // End of archive: a second zero block must follow (GNU tar writes two); nothing may hide after it.
        const second = await source.read(BLOCK)
        if (second.length !== BLOCK || !isZero(second)) throw integrityError('TRUNCATED', 'the archive ends with a broken end-of-archive marker')
        if (!(await source.onlyZerosLeft())) throw integrityError('TRAILING_DATA', 'data follows the end of the archive')
        return
      }
      const header = new Header(block)
      if (!header.cksumValid) throw integrityError('BAD_HEADER', `a tar header at byte ${source.consumed - BLOCK} has a wrong checksum (corrupt archive)`)
      const type = header.type
      const size = header.size ?? 0
      if (type === 'ExtendedHeader') {
        if (size > 64 * 1024) throw integrityError('BAD_HEADER', 'a pax header is implausibly large')
        const body = await source.read(size)
        if (body.length < size) throw integrityError('TRUNCATED', 'the archive is truncated inside a pax header')
        await source.skip(pad(size))
        const record = Pax.parse(body.toString('utf8'), {}) as unknown as Record<string, string | number | undefined>
        pax = {path: record.path, size: record.size}
        continue
      }
      const path = String(pax?.path ?? header.path ?? '')
      const entrySize = Number(pax?.size ?? size)
      pax = undefined
      if (type !== 'File' && type !== 'OldFile' && type !== 'Directory') {
        throw integrityError('UNSAFE_ENTRY', `entry "${path}" is a ${describeType(type)}; a bundle holds only regular files`)
      }
      checkPath(path)
      if (entrySize > maxSize) throw integrityError('ENTRY_TOO_LARGE', `entry "${path}" is ${entrySize} bytes, above the limit of ${maxSize}`)
      const isDir = type === 'Directory'
      if (isDir && entrySize !== 0) throw integrityError('BAD_HEADER', `directory entry "${path}" claims a size`)
      const entry: TarEntry = {path, size: entrySize, type: isDir ? 'Directory' : 'File', offset: source.consumed, body: source.stream(entrySize, path)}
      yield entry
      // Skip whatever the consumer left unread, then the padding.
      await source.skip(source.entryLeft, path)
      await source.skip(pad(entrySize), path)
    }
  } finally {
    // a consumer that stops early (inspect reads two entries) closes the input too: no file is left open
    await source.close()
  }
}

function pad(size: number): number {
  const rest = size % BLOCK
  return rest === 0 ? 0 : BLOCK - rest
}

function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false
  return true
}

function describeType(type: string | undefined): string {
  if (type === 'SymbolicLink') return 'symbolic link'
  if (type === 'Link') return 'hard link'
  return `"${type ?? 'unknown'}" entry`
}

/** Refuses absolute paths, `..` segments, backslashes and control characters. */
export function checkPath(path: string): void {
  const bad =
    path === '' ||
    path.startsWith('/') ||
    /^[A-Za-z]:/.test(path) ||
    path.includes('\\') ||
    /[\x00-\x1f]/.test(path) ||
    path.split('/').some((seg) => seg === '..')
  if (bad) throw integrityError('UNSAFE_PATH', `entry "${path}" has an unsafe path (absolute or containing "..")`)
}

/** Pull-based reader over an async iterable of chunks. */
class ChunkSource {
  consumed = 0
  /** bytes of the current entry's body not yet taken */
  entryLeft = 0
  private readonly iterator: AsyncIterator<Buffer | Uint8Array>
  private pending: Buffer = Buffer.alloc(0)
  private done = false

  constructor(
    input: AsyncIterable<Buffer | Uint8Array>,
    private readonly onBytes?: (consumed: number) => void,
  ) {
    this.iterator = input[Symbol.asyncIterator]()
  }

  /** Ends the input early (its file closes) unless it ended already. */
  async close(): Promise<void> {
    if (this.done) return
    this.done = true
    await this.iterator.return?.()
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false
    throwIfInterrupted()
    // The input may reuse a chunk's memory once the next is requested: keep a private copy of the rest.
    if (this.pending.length) this.pending = Buffer.from(this.pending)
    const next = await this.iterator.next()
    if (next.done) {
      this.done = true
      return false
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength)
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    return true
  }

  private take(n: number): Buffer {
    const out = this.pending.subarray(0, n)
    this.pending = this.pending.subarray(n)
    this.consumed += out.length
    this.onBytes?.(this.consumed)
    return out
  }

  /** Up to n bytes (fewer only at the end of input). */
  async read(n: number): Promise<Buffer> {
    while (this.pending.length < n && (await this.fill()));
    return Buffer.from(this.take(Math.min(n, this.pending.length)))
  }

  async skip(n: number, path?: string): Promise<void> {
    let left = n
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.fill())) {
        throw integrityError('TRUNCATED', `the archive is truncated${path ? ` inside "${path}"` : ''}`)
      }
      const taken = this.take(Math.min(left, this.pending.length)).length
      left -= taken
      if (this.entryLeft > 0) this.entryLeft -= Math.min(this.entryLeft, taken)
    }
  }

  stream(size: number, path: string): AsyncGenerator<Buffer> {
    this.entryLeft = size
    return this.body(size, path)
  }

  private async *body(size: number, path: string): AsyncGenerator<Buffer> {
    while (this.entryLeft > 0) {
      if (this.pending.length === 0 && !(await this.fill())) {
        throw integrityError('TRUNCATED', `the archive is truncated inside "${path}" (${this.entryLeft} of ${size} bytes missing)`)
      }
      const out = this.take(Math.min(this.entryLeft, this.pending.length))
      this.entryLeft -= out.length
      yield out
    }
  }

  async onlyZerosLeft(): Promise<boolean> {
    while (true) {
      if (!isZero(this.pending)) return false
      this.consumed += this.pending.length
      this.pending = Buffer.alloc(0)
      if (!(await this.fill())) return true
    }
  }
}
