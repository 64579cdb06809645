import {type FileHandle, open} from 'node:fs/promises'

/** Bytes read at any offset: a file, or a blob inside a bundle archive (see bundle/archive-blobs.ts). */
export interface RandomSource {
  /** reads up to `length` bytes at `position` into `buffer` at `offset`; fewer only at the end */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>
  close(): Promise<void>
}

/** A file, or `size` bytes of it from `base` on. */
export async function openFileSource(path: string, base = 0, size = Infinity): Promise<RandomSource> {
  const fh: FileHandle = await open(path, 'r')
  return {
    read: async (buffer, offset, length, position) => {
      const want = Math.max(0, Math.min(length, size - position))
      let done = 0
      while (done < want) {
        const {bytesRead} = await fh.read(buffer, offset + done, want - done, base + position + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      return done
    },
    close: () => fh.close(),
  }
}

/** Reads exactly `length` bytes or says how many it got. */
export async function readFully(source: RandomSource, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let done = 0
  while (done < length) {
    const n = await source.read(buffer, offset + done, length - done, position + done)
    if (n === 0) break
    done += n
  }
  return done
}
