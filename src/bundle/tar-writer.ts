import {Header} from 'tar/header'
import {Pax} from 'tar/pax'

/** Fixed metadata of every entry, so two builds of one lock give identical bytes. */
const EPOCH = new Date(0)
const BLOCK = 512

/** The 512-byte header (and a pax header before it when the size needs one) for a regular file. */
export function fileHeader(path: string, size: number): Buffer {
  const fields = {path, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', size, mtime: EPOCH, type: 'File' as const}
  const header = new Header(fields)
  const block = Buffer.alloc(BLOCK)
  header.encode(block, 0)
  if (!header.needPax) return block
  // Sizes of 8 GiB and more do not fit the octal field: a pax record carries the exact value.
  const pax = new Pax({path, size, mtime: EPOCH, uid: 0, gid: 0} as ConstructorParameters<typeof Pax>[0]).encode()
  return Buffer.concat([pax, block])
}

/** Zero bytes that pad an entry of `size` bytes to the next block. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest)
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2)

/** Bytes an entry takes in the archive, header and padding included. */
export function entryLength(path: string, size: number): number {
  return fileHeader(path, size).length + size + padding(size).length
}
