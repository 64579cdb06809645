import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {Sha256Counter} from '../store/hashing.js'
import {integrityError} from '../errors.js'
import {mediaError} from './media-io.js'
import {readPartsFile, type PartRecord, type PartsFile} from './parts-format.js'

export interface PartsInput {
  label: string
  size: number
  parts: PartsFile
  /** a fresh stream of the joined parts each call; checks each part's size and sha256 as it goes */
  open(): AsyncIterable<Buffer>
}

/** Checks every part listed is on the medium with its size, before any byte is read. */
export async function checkPartsPresent(dir: string, parts: PartsFile): Promise<void> {
  for (const part of parts.parts) {
    const info = await stat(join(dir, part.file)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw mediaError(err, `reading ${part.file}`)
    })
    if (!info) throw integrityError('MISSING_PART', `${part.file} is missing from ${dir}; write the bundle to the stick again`, {part: part.file})
    if (info.size !== part.size) {
      throw integrityError('PART_SIZE_MISMATCH', `${part.file} is ${info.size} bytes, ${basename(parts.bundle)}.parts.json says ${part.size}: truncated or not this bundle's part`, {part: part.file})
    }
  }
}

/** Streams one part, yielding its bytes and failing at its end when its sha256 is not the recorded one. */
export async function* readPart(dir: string, part: PartRecord, total?: Sha256Counter): AsyncGenerator<Buffer> {
  const counter = new Sha256Counter()
  try {
    for await (const chunk of createReadStream(join(dir, part.file), {highWaterMark: 1 << 20}) as AsyncIterable<Buffer>) {
      counter.update(chunk)
      total?.update(chunk)
      yield chunk
    }
  } catch (err) {
    throw mediaError(err, `reading ${part.file} from ${dir}`)
  }
  if (counter.size !== part.size) throw integrityError('PART_SIZE_MISMATCH', `${part.file} is ${counter.size} bytes, ${part.size} expected`, {part: part.file})
  const got = counter.digest()
  if (got !== part.sha256) {
    throw integrityError('PART_CORRUPT', `${part.file} does not match its sha256 in the parts file (got ${got}): the part is damaged or from another bundle`, {part: part.file})
  }
}

/**
 * Opens a bundle written as parts (`<bundle>.parts.json` beside its
 * `.part-NNN` files) as one stream, never joined on disk.
 */
export async function openPartsInput(partsPath: string): Promise<PartsInput> {
  const parts = await readPartsFile(partsPath)
  const dir = dirname(partsPath)
  await checkPartsPresent(dir, parts)
  return {
    label: join(dir, parts.bundle),
    size: parts.size,
    parts,
    open: () => joinParts(dir, parts),
  }
}

/**
 * A hash of the joined parts, to compare with parts.json's whole `sha256`, where it must be
 * computed: an earlier writer gave it for several parts. (For one part it is that part's, which
 * readPart checks; each part is checked against its own sha256 either way.)
 */
export function wholeToCheck(parts: PartsFile): Sha256Counter | undefined {
  return parts.sha256 !== undefined && parts.parts.length > 1 ? new Sha256Counter() : undefined
}

async function* joinParts(dir: string, parts: PartsFile): AsyncGenerator<Buffer> {
  const total = wholeToCheck(parts)
  for (const part of parts.parts) yield* readPart(dir, part, total)
  const got = total?.digest()
  if (got !== undefined && got !== parts.sha256) throw integrityError('BUNDLE_DIGEST_MISMATCH', `the parts of ${parts.bundle} join into bytes whose sha256 is ${got}, not ${parts.sha256}: the parts file was altered`)
}
