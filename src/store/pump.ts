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

/** A read error of `compareFiles`, saying which of the two files failed. */
export class CompareReadError extends Error {
  constructor(
    readonly side: 'a' | 'b',
    readonly cause: unknown,
  ) {
    super((cause as Error).message)
  }
}

/**
 * Compares `size` bytes of file `a` from `aOffset` with file `b` from `bOffset`, reading both
 * ahead in pairs of chunks; no hashing, so it costs two reads and a memcmp. Returns how many
 * bytes matched: `size` when they are the same, fewer at the first difference or where a file
 * ends early. `onChunk` hears of each matched chunk. A failed read is a CompareReadError.
 */
export async function compareFiles(a: string, aOffset: number, b: string, bOffset: number, size: number, onChunk?: (bytes: number) => void): Promise<number> {
  const fa = await open(a, 'r').catch((err: unknown) => Promise.reject(new CompareReadError('a', err)))
  const fb = await open(b, 'r').catch(async (err: unknown) => {
    await fa.close()
    throw new CompareReadError('b', err)
  })
  const slots = Array.from({length: 3}, () => ({a: Buffer.allocUnsafe(CHUNK), b: Buffer.allocUnsafe(CHUNK)}))
  const read = (file: typeof fa, side: 'a' | 'b', buf: Buffer, want: number, at: number) =>
    file.read(buf, 0, want, at).then(
      (r) => r.bytesRead,
      (err: unknown) => Promise.reject(new CompareReadError(side, err)),
    )
  const pending: Array<Promise<[number, number]>> = []
  const issue = (i: number) => {
    const at = i * CHUNK
    if (at >= size) return
    const want = Math.min(CHUNK, size - at)
    const slot = slots[i % slots.length]
    const pair = Promise.all([read(fa, 'a', slot.a, want, aOffset + at), read(fb, 'b', slot.b, want, bOffset + at)])
    pair.catch(() => {})
    pending[i] = pair
  }
  let same = 0
  try {
    for (let i = 0; i < slots.length; i++) issue(i)
    for (let i = 0; same < size; i++) {
      const [ga, gb] = await pending[i]
      const want = Math.min(CHUNK, size - i * CHUNK)
      const slot = slots[i % slots.length]
      let n = 0
      const upTo = Math.min(ga, gb)
      if (slot.a.subarray(0, upTo).equals(slot.b.subarray(0, upTo))) n = upTo
      else while (n < upTo && slot.a[n] === slot.b[n]) n++
      same += n
      if (n < want) break
      onChunk?.(n)
      // the slot is compared: read the chunk after next into it
      issue(i + slots.length)
    }
    return same
  } finally {
    await Promise.allSettled(pending)
    await Promise.allSettled([fa.close(), fb.close()])
  }
}
