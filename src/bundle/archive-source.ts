import {type FileHandle, open} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import type {RandomSource} from '../chunks/sources.js'
import {locateBundle} from '../media/locate.js'
import {readPartsFile} from '../media/parts-format.js'

/**
 * Random reads of `size` bytes at `offset` in a bundle archive: a blob inside a .ferry.tar, or
 * inside the joined parts on a stick (`path` as the user gave it: file, folder or parts.json),
 * read from the part files where they lie, never joined. What is read is checked by the caller
 * (each chunk against its index).
 */
export async function openArchiveRegion(path: string, offset: number, size: number): Promise<RandomSource> {
  const located = await locateBundle(path)
  const pieces: Array<{file: string; start: number; size: number}> = []
  if (located?.kind === 'parts') {
    const parts = await readPartsFile(located.path)
    let at = 0
    for (const part of parts.parts) {
      pieces.push({file: join(dirname(located.path), part.file), start: at, size: part.size})
      at += part.size
    }
  } else {
    pieces.push({file: located?.path ?? path, start: 0, size: Number.MAX_SAFE_INTEGER})
  }
  const handles = new Map<string, FileHandle>()
  const handle = async (file: string) => {
    let h = handles.get(file)
    if (!h) handles.set(file, (h = await open(file, 'r')))
    return h
  }
  return {
    read: async (buffer, bufferOffset, length, position) => {
      let want = Math.max(0, Math.min(length, size - position))
      let at = offset + position
      let done = 0
      while (want > 0) {
        const piece = pieces.find((p) => at >= p.start && at < p.start + p.size)
        if (!piece) break
        const n = Math.min(want, piece.start + piece.size - at)
        const {bytesRead} = await (await handle(piece.file)).read(buffer, bufferOffset + done, n, at - piece.start)
        if (bytesRead === 0) break
        done += bytesRead
        at += bytesRead
        want -= bytesRead
      }
      return done
    },
    close: async () => {
      for (const h of handles.values()) await h.close()
      handles.clear()
    },
  }
}
