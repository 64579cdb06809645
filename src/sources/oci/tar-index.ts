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

/**
 * Lists the regular files of a tar archive by reading only its headers (seeking over the data):
 * path → where its bytes are. Understands pax and GNU long names; paths lose a leading "./".
 */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  const fh = await open(file, 'r')
  try {
    return await scan(fh, file)
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

async function scan(fh: FileHandle, file: string): Promise<Map<string, TarMember>> {
  const size = (await fh.stat()).size
  const members = new Map<string, TarMember>()
  let pos = 0
  let pending: {path?: string; size?: number} = {}
  while (pos + BLOCK <= size) {
    const block = await readExact(fh, BLOCK, pos, file)
    if (block.every((b) => b === 0)) break
    const header = new Header(block)
    if (!header.cksumValid) throw integrityError('BAD_TAR', `${file}: bad tar header at byte ${pos}`)
    const length = header.size ?? 0
    const data = pos + BLOCK
    pos = data + Math.ceil(length / BLOCK) * BLOCK
    const type = header.type
    if (type === 'ExtendedHeader' || type === 'GlobalExtendedHeader') {
      if (type === 'ExtendedHeader') {
        const pax = Pax.parse((await readExact(fh, length, data, file)).toString('utf8'), header)
        pending = {path: pax.path, size: pax.size}
      }
      continue
    }
    if (type === 'NextFileHasLongPath' || type === 'OldGnuLongPath') {
      pending = {...pending, path: (await readExact(fh, length, data, file)).toString('utf8').replace(/\0+$/, '')}
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
