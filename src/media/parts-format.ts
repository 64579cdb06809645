import {readFile} from 'node:fs/promises'
import {basename} from 'node:path'
import {z} from 'zod'
import {integrityError, usageError} from '../errors.js'

export const PARTS_SCHEMA = 'ferry.parts/v1'
export const PARTS_SUFFIX = '.parts.json'
/** Part numbers have three digits, so at most this many parts. */
export const MAX_PARTS = 1000

const Sha256 = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a digest "sha256:<64 hex>"')

export const PartRecord = z.strictObject({
  file: z.string().min(1),
  size: z.number().int().positive(),
  sha256: Sha256,
})
export type PartRecord = z.infer<typeof PartRecord>

/** `<bundle>.parts.json`: how a bundle file was cut into parts on a medium. */
export const PartsFile = z.strictObject({
  schema: z.literal(PARTS_SCHEMA),
  /** the bundle's file name; its parts joined are that file, byte for byte */
  bundle: z.string().regex(/^[^/\\]+\.ferry\.tar$/),
  name: z.string().min(1),
  version: z.string().min(1),
  size: z.number().int().positive(),
  /**
   * the whole bundle's sha256, where it costs nothing: a bundle in one part, whose sha256 it is.
   * Each part's sha256 already covers every byte; earlier writers gave it for any bundle.
   */
  sha256: Sha256.optional(),
  partSize: z.number().int().positive(),
  parts: z.array(PartRecord).min(1).max(MAX_PARTS),
})
export type PartsFile = z.infer<typeof PartsFile>

export const partFileName = (bundleFile: string, index: number) => `${bundleFile}.part-${String(index).padStart(3, '0')}`
export const partsFileName = (bundleFile: string) => `${bundleFile}${PARTS_SUFFIX}`

/** Offsets and sizes of the parts a file of `size` bytes is cut into. */
export function planParts(size: number, partSize: number): Array<{offset: number; size: number}> {
  if (partSize <= 0) throw usageError('BAD_PART_SIZE', 'the part size must be above 0; give --part-size such as 1GiB')
  const count = Math.max(1, Math.ceil(size / partSize))
  if (count > MAX_PARTS) throw usageError('TOO_MANY_PARTS', `a part size of ${partSize} bytes cuts this bundle into ${count} parts; at most ${MAX_PARTS}: give a larger --part-size`)
  return Array.from({length: count}, (_, i) => ({offset: i * partSize, size: Math.min(partSize, size - i * partSize)}))
}

export function serialiseParts(parts: PartsFile): Buffer {
  return Buffer.from(JSON.stringify(parts, null, 2) + '\n')
}

/** Reads and checks a parts.json: schema, part names in order, sizes that add up. */
export async function readPartsFile(path: string): Promise<PartsFile> {
  const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw usageError('NOT_FOUND', `${path}: no such parts file; give the .parts.json "ferry usb write" wrote, or the stick's folder`)
    throw err
  })
  const bad = (why: string) => integrityError('BAD_PARTS_JSON', `${basename(path)} is not a valid parts file: ${why}; write the bundle to the stick again`)
  if (bytes.length > 1 << 20) throw bad('implausibly large')
  let raw: unknown
  try {
    raw = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw bad('not JSON')
  }
  const parsed = PartsFile.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw bad(`${issue.path.join('.') || '(top)'}: ${issue.message}`)
  }
  const parts = parsed.data
  if (basename(path) !== partsFileName(parts.bundle)) throw bad(`it describes ${parts.bundle}, not ${basename(path).slice(0, -PARTS_SUFFIX.length)}`)
  const plan = planParts(parts.size, parts.partSize)
  if (plan.length !== parts.parts.length) throw bad(`${parts.parts.length} parts listed, ${plan.length} expected from its sizes`)
  parts.parts.forEach((p, i) => {
    if (p.file !== partFileName(parts.bundle, i)) throw bad(`part ${i} is named "${p.file}"`)
    if (p.size !== plan[i].size) throw bad(`${p.file} is listed as ${p.size} bytes, ${plan[i].size} expected`)
  })
  if (parts.sha256 !== undefined && parts.parts.length === 1 && parts.sha256 !== parts.parts[0].sha256) throw bad(`its one part's sha256 is not the bundle's`)
  return parts
}
