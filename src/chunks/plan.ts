import type {ChunkIndex} from './index-format.js'

/** Where one chunk of a rebuilt file comes from. */
export interface ChunkStep {
  i: number
  length: number
  /** offset in the file being rebuilt */
  at: number
  /** `pack`: the pack blob; otherwise the position of the base artifact in `delta.base` */
  from: 'pack' | number
  /** offset in that source */
  offset: number
  /** this chunk's bytes enter the pack here (first time it appears and no base holds it) */
  fresh: boolean
}

export interface PackSummary {
  chunks: number
  /** chunks the pack does not carry (found in the base, or earlier in the same file) */
  reused: number
  /** bytes of the pack */
  packSize: number
}

/**
 * The chunks of the base's chunked artifacts, by sha256: the first place each one is found.
 * One map entry per distinct chunk (about 160,000 for 10 GiB: a few MiB).
 */
export class BaseChunks {
  private readonly where = new Map<string, number>()

  constructor(indexes: ChunkIndex[]) {
    indexes.forEach((index, source) => {
      for (const c of index.chunks()) {
        const key = index.keyAt(c.i)
        // offset and source in one number: offsets stay far below 2^53 / 256
        if (!this.where.has(key)) this.where.set(key, c.offset * 256 + source)
      }
    })
  }

  find(key: string): {source: number; offset: number} | undefined {
    const v = this.where.get(key)
    return v === undefined ? undefined : {source: v % 256, offset: Math.floor(v / 256)}
  }
}

/**
 * The one rule build and rebuild share: walking the new index in order, a chunk some base
 * artifact holds is read from there; any other chunk is read from the pack, where chunks are
 * laid one after another in the order they first appear. So the pack needs no table of its own.
 */
export function* planChunks(index: ChunkIndex, base: BaseChunks): Generator<ChunkStep> {
  const packed = new Map<string, number>()
  let packSize = 0
  for (const c of index.chunks()) {
    const key = index.keyAt(c.i)
    const found = base.find(key)
    if (found) {
      yield {i: c.i, length: c.length, at: c.offset, from: found.source, offset: found.offset, fresh: false}
      continue
    }
    const earlier = packed.get(key)
    if (earlier !== undefined) {
      yield {i: c.i, length: c.length, at: c.offset, from: 'pack', offset: earlier, fresh: false}
      continue
    }
    packed.set(key, packSize)
    yield {i: c.i, length: c.length, at: c.offset, from: 'pack', offset: packSize, fresh: true}
    packSize += c.length
  }
}

/** Counts for `bundle build --json`, inspect and diff, without reading any bytes. */
export function summarisePack(index: ChunkIndex, base: BaseChunks): PackSummary {
  let fresh = 0
  let packSize = 0
  for (const step of planChunks(index, base)) {
    if (!step.fresh) continue
    fresh++
    packSize += step.length
  }
  return {chunks: index.count, reused: index.count - fresh, packSize}
}
