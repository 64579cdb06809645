import {open} from 'node:fs/promises'

const CHUNK = 4 << 20

/**
 * Reads a file (or a byte range of it) through two reused buffers, reading the
 * next chunk while the caller works on the current one; no per-chunk garbage,
 * so memory stays flat at any size. A yielded chunk is valid only until the
 * next one is requested: consume it (hash, write and await the write) or copy it.
 */
export async function* readFileChunks(path: string, start = 0, end?: number): AsyncGenerator<Buffer> {
  const file = await open(path, 'r')
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)]
  let turn = 0
  let position = start
  const readInto = (buffer: Buffer) => {
    const want = end === undefined ? CHUNK : Math.min(CHUNK, end - position)
    const read = want > 0 ? file.read(buffer, 0, want, position) : Promise.resolve({bytesRead: 0})
    read.catch(() => {})
    return read
  }
  let next = readInto(buffers[turn])
  try {
    while (true) {
      const {bytesRead} = await next
      if (bytesRead === 0) return
      position += bytesRead
      const current = buffers[turn].subarray(0, bytesRead)
      turn ^= 1
      next = readInto(buffers[turn])
      yield current
    }
  } finally {
    await next.catch(() => {})
    await file.close()
  }
}
