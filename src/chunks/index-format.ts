import {integrityError} from '../errors.js'
import type {ChunkParams} from './params.js'

/**
 * A chunk index, the blob a bundle carries beside each chunked artifact (see docs/bundle-format.md):
 *
 *   0  8  magic "FERRYCIX"
 *   8  4  format version (1)                     all integers little-endian
 *  12 20  min, avg, max, level, seed (uint32 each: the chunking parameters)
 *  32  8  the file's size in bytes (uint64)
 *  40  8  the number of chunks (uint64)
 *  48     per chunk, in file order: sha256 (32 bytes), length (uint32)
 *
 * A chunk's offset is the sum of the lengths before it.
 */
export const INDEX_MAGIC = 'FERRYCIX'
export const INDEX_VERSION = 1
export const HEADER_BYTES = 48
export const RECORD_BYTES = 36
export const INDEX_MEDIA_TYPE = 'application/vnd.ferry.chunk-index.v1'
export const PACK_MEDIA_TYPE = 'application/vnd.ferry.chunk-pack.v1'

export class ChunkIndex {
  private constructor(
    readonly params: ChunkParams,
    /** bytes of the whole file */
    readonly size: number,
    readonly count: number,
    /** the records, RECORD_BYTES each */
    private readonly records: Buffer,
  ) {}

  /** The index of a file of `size` bytes from its chunk records (as the chunker makes them). */
  static fromRecords(params: ChunkParams, size: number, records: Buffer): ChunkIndex {
    return new ChunkIndex(params, size, records.length / RECORD_BYTES, records)
  }

  /** Reads and checks an index blob; `what` names the artifact in errors. */
  static parse(bytes: Buffer, what: string): ChunkIndex {
    const bad = (why: string) => integrityError('BAD_CHUNK_INDEX', `the chunk index of ${what} is damaged: ${why}`)
    if (bytes.length < HEADER_BYTES || bytes.toString('latin1', 0, 8) !== INDEX_MAGIC) throw bad('not a Ferry chunk index')
    if (bytes.readUInt32LE(8) !== INDEX_VERSION) throw bad(`format version ${bytes.readUInt32LE(8)} is not known`)
    const params: ChunkParams = {min: bytes.readUInt32LE(12), avg: bytes.readUInt32LE(16), max: bytes.readUInt32LE(20), level: bytes.readUInt32LE(24), seed: bytes.readUInt32LE(28)}
    const size = Number(bytes.readBigUInt64LE(32))
    const count = Number(bytes.readBigUInt64LE(40))
    if (bytes.length !== HEADER_BYTES + count * RECORD_BYTES) throw bad(`${bytes.length} bytes for ${count} chunks`)
    const index = new ChunkIndex(params, size, count, bytes.subarray(HEADER_BYTES))
    let total = 0
    for (let i = 0; i < count; i++) {
      const n = index.lengthAt(i)
      if (n === 0 || n > params.max) throw bad(`chunk ${i} is ${n} bytes`)
      total += n
    }
    if (total !== size) throw bad(`its chunks add up to ${total} bytes, not ${size}`)
    return index
  }

  /** The blob's bytes. */
  serialise(): Buffer {
    const head = Buffer.alloc(HEADER_BYTES)
    head.write(INDEX_MAGIC, 0, 'latin1')
    head.writeUInt32LE(INDEX_VERSION, 8)
    const p = this.params
    ;[p.min, p.avg, p.max, p.level, p.seed].forEach((v, i) => head.writeUInt32LE(v >>> 0, 12 + 4 * i))
    head.writeBigUInt64LE(BigInt(this.size), 32)
    head.writeBigUInt64LE(BigInt(this.count), 40)
    return Buffer.concat([head, this.records])
  }

  /** The sha256 of chunk `i` (a view, 32 bytes). */
  hashAt(i: number): Buffer {
    return this.records.subarray(i * RECORD_BYTES, i * RECORD_BYTES + 32)
  }

  /** A short key for chunk `i`'s hash, for maps. */
  keyAt(i: number): string {
    return this.records.toString('latin1', i * RECORD_BYTES, i * RECORD_BYTES + 32)
  }

  lengthAt(i: number): number {
    return this.records.readUInt32LE(i * RECORD_BYTES + 32)
  }

  /** Every chunk in file order with its offset. */
  *chunks(): Generator<{i: number; offset: number; length: number}> {
    let offset = 0
    for (let i = 0; i < this.count; i++) {
      const length = this.lengthAt(i)
      yield {i, offset, length}
      offset += length
    }
  }
}
