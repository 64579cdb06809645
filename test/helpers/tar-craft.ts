// Reads a small bundle into memory and writes tampered copies: the verify corpus.
import {readFile, writeFile} from 'node:fs/promises'
import {Header} from 'tar'

export interface CraftEntry {
  path: string
  data: Buffer
  type?: 'File' | 'SymbolicLink' | 'Link' | 'Directory'
  linkpath?: string
}

/** Parses a plain ustar archive (what Ferry writes) into its entries. */
export async function readEntries(file: string): Promise<CraftEntry[]> {
  const buf = await readFile(file)
  const out: CraftEntry[] = []
  let off = 0
  while (off + 512 <= buf.length) {
    const block = buf.subarray(off, off + 512)
    if (block.every((b) => b === 0)) break
    const h = new Header(block)
    const size = h.size ?? 0
    out.push({path: h.path!, data: Buffer.from(buf.subarray(off + 512, off + 512 + size)), type: 'File'})
    off += 512 + Math.ceil(size / 512) * 512
  }
  return out
}

export function encodeEntries(entries: CraftEntry[]): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    const block = Buffer.alloc(512)
    const type = e.type ?? 'File'
    const size = type === 'File' ? e.data.length : 0
    new Header({path: e.path, mode: 0o644, uid: 0, gid: 0, size, mtime: new Date(0), type, linkpath: e.linkpath ?? ''}).encode(block, 0)
    parts.push(block)
    if (size) {
      parts.push(e.data)
      if (size % 512) parts.push(Buffer.alloc(512 - (size % 512)))
    }
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

export async function writeEntries(file: string, entries: CraftEntry[]): Promise<void> {
  await writeFile(file, encodeEntries(entries))
}
