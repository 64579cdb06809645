/**
 * The chunking parameters every index records. A later version may change them: an index made
 * with other parameters is simply not reused (its chunks never match), nothing breaks.
 */
export interface ChunkParams {
  /** no cut before this many bytes of a chunk */
  min: number
  /** the size cuts aim at (a power of two) */
  avg: number
  /** a cut is forced here */
  max: number
  /** FastCDC normalisation level: the stricter mask below `avg` has this many more bits, the looser one above it this many fewer */
  level: number
  /** seed of the gear table (see gearTable) */
  seed: number
}

export const CHUNK_PARAMS: ChunkParams = Object.freeze({min: 16 << 10, avg: 64 << 10, max: 256 << 10, level: 1, seed: 0x46455259})

export const sameParams = (a: ChunkParams, b: ChunkParams) => a.min === b.min && a.avg === b.avg && a.max === b.max && a.level === b.level && a.seed === b.seed
