import type {ChunkIndex} from './index-format.js'
import {type BaseChunks, planChunks} from './plan.js'
import {type RandomSource, readFully} from './sources.js'

/** Fresh chunks next to each other in the new file are read together, up to this many bytes. */
const READ_RUN = 1 << 20

/**
 * The pack of a new file against a base: the bytes of the chunks no base artifact holds, each
 * once, in the order they first appear (planChunks), read from the new file in runs. A chunk's
 * bytes are checked later, by the rebuild, against the signed index.
 */
export async function* packBytes(index: ChunkIndex, base: BaseChunks, file: RandomSource, what: string): AsyncGenerator<Buffer> {
  let runAt = -1
  let runLength = 0
  const flush = async (): Promise<Buffer | undefined> => {
    if (runLength === 0) return undefined
    const bytes = Buffer.allocUnsafe(runLength)
    const got = await readFully(file, bytes, 0, runLength, runAt)
    if (got !== runLength) throw new Error(`${what} ends before the ${runLength} bytes at ${runAt} its index names`)
    runLength = 0
    return bytes
  }
  for (const step of planChunks(index, base)) {
    if (!step.fresh) continue
    if (runLength > 0 && (runAt + runLength !== step.at || runLength + step.length > READ_RUN)) {
      const bytes = await flush()
      if (bytes) yield bytes
    }
    if (runLength === 0) runAt = step.at
    runLength += step.length
  }
  const bytes = await flush()
  if (bytes) yield bytes
}
