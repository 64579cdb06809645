import {open} from 'node:fs/promises'
import {returnSlab, takeSlab} from './hash-pool.js'

const CHUNK = 1 << 20
const RING = 6

/**
 * Streams `size` bytes of `path` from `offset` through a ring of reused shared
 * buffers. `use` gets each chunk and returns the work it started on it (hashing
 * on worker threads, a positional write); that work runs while the next chunks
 * are read, and a buffer is reused only once its work settled. So reading,
 * writing and hashing overlap on two cores, with no per-chunk garbage.
 * Returns the bytes read (fewer than `size` only when the file is shorter).
 */
export async function pumpFile(path: string, offset: number, size: number, use: (chunk: Buffer, position: number) => Promise<unknown>): Promise<number> {
  const ring = Array.from({length: RING}, () => ({slab: takeSlab(CHUNK), busy: Promise.resolve() as Promise<unknown>}))
  const file = await open(path, 'r')
  let done = 0
  try {
    for (let i = 0; done < size; i++) {
      const slot = ring[i % RING]
      await slot.busy
      const {bytesRead} = await file.read(slot.slab, 0, Math.min(CHUNK, size - done), offset + done)
      if (bytesRead === 0) break
      const work = use(slot.slab.subarray(0, bytesRead), done)
      work.catch(() => {})
      slot.busy = work
      done += bytesRead
    }
    await Promise.all(ring.map((s) => s.busy))
    return done
  } finally {
    // Nothing may still read a buffer when it goes back to the pool.
    await Promise.allSettled(ring.map((s) => s.busy))
    for (const s of ring) returnSlab(s.slab)
    await file.close()
  }
}
