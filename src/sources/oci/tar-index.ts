import {open, type FileHandle} from 'node:fs/promises'
import {Header} from 'tar/header'
import {Pax} from 'tar/pax'
import {integrityError} from '../../errors.js'

export interface TarMember {
  /** offset of the member's data in the file */
  offset: number
  size: number
}

const BLOCK = 512

/** Reads exactly `length` bytes at `position` (an archive file, or the joined parts of a stick). */
export type ReadAt = (length: number, position: number) => Promise<Buffer>

/**
 * Lists the regular files of a tar archive by reading only its headers (seeking over the data):
 * path → where its bytes are. Understands pax and GNU long names; paths lose a leading "./".
 */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  const fh = await open(file, 'r')
  try {
    return await scanTar((length, position) => readExact(fh, length, position, file), (await fh.stat()).size, file)
  } finally {
    await fh.close()
  }
}

async function readExact(fh: FileHandle, length: number, position: number, file: string): Promise<Buffer> {
  const buf = Buffer.alloc(length)
  const {bytesRead} = await fh.read(buf, 0, length, position)
  if (bytesRead !== length) throw integrityError('TRUNCATED', `${file}: the archive ends in the middle of an entry`)
  return buf
}

/** indexTar over any reader of `size` bytes; `file` names the archive in errors. */
export async function scanTar(read: ReadAt, size: number, file: string): Promise<Map<string, TarMember>> {
  const members = new Map<string, TarMember>()
  let pos = 0
  let pending: {path?: string; size?: number} = {}
  while (pos + BLOCK <= size) {
    const block = await read(BLOCK, pos)
    if (block.every((b) => b === 0)) break
    const header = new Header(block)
    if (!header.cksumValid) throw integrityError('BAD_TAR', `${file}: bad tar header at byte ${pos}`)
    const length = header.size ?? 0
    const data = pos + BLOCK
    pos = data + Math.ceil(length / BLOCK) * BLOCK
    const type = header.type
    if (type === 'ExtendedHeader' || type === 'GlobalExtendedHeader') {
      if (type === 'ExtendedHeader') {
        const pax = Pax.parse((await read(length, data)).toString('utf8'), header)
        pending = {path: pax.path, size: pax.size}
      }
      continue
    }
    if (type === 'NextFileHasLongPath' || type === 'OldGnuLongPath') {
      pending = {...pending, path: (await read(length, data)).toString('utf8').replace(/\0+$/, '')}
      continue
    }
    const path = (pending.path ?? header.path ?? '').replace(/^\.\//, '')
    const realSize = pending.size ?? length
    if (pending.size !== undefined) pos = data + Math.ceil(realSize / BLOCK) * BLOCK
    pending = {}
    if (type === 'File' || type === 'OldFile' || type === 'ContiguousFile') members.set(path, {offset: data, size: realSize})
  }
  return members
}
