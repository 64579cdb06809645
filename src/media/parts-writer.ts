import {randomBytes} from 'node:crypto'
import {open, readdir, readFile, rename, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {remoteHash} from '../store/hash-pool.js'
import {CompareReadError, compareFiles, pumpFile} from '../store/pump.js'
import {asLocalIoError, FerryError, integrityError} from '../errors.js'
import {formatBytes} from '../format.js'
import {throwIfInterrupted} from '../interrupt.js'
import type {ProgressListener} from '../progress.js'
import {detectFilesystem, FAT_MAX_FILE, FAT_PART_SIZE, type MediaFilesystem} from './filesystem.js'
import {syncDir, writeFileAtomic, writeFullyAt} from '../store/atomic-file.js'
import {mediaError} from './media-io.js'
import {PARTS_SCHEMA, partFileName, partsFileName, planParts, serialiseParts, type PartRecord, type PartsFile} from './parts-format.js'

/** The bundle file to put on the medium, with what its bundle.json says. */
export interface MediaSource {
  path: string
  size: number
  /** file name on the medium, e.g. edge-site-1.2.3.ferry.tar */
  file: string
  name: string
  version: string
}

export interface WriteMediaOptions {
  /** bytes per part; on FAT at most 4 GiB − 1 */
  partSize?: number
  /** read every byte back after writing (default true) */
  verify?: boolean
  onProgress?: ProgressListener
}

export interface WriteMediaResult {
  partsFile: string
  parts: PartsFile
  filesystem: MediaFilesystem
  /** bytes written in this run; parts already on the medium and intact are kept */
  written: number
  kept: number
  verified: boolean
}

const PART_RE = /\.part-(\d{3})$/

function choosePartSize(fs: MediaFilesystem, size: number, asked?: number): number {
  if (asked !== undefined) {
    if (fs.fatLimit && asked > FAT_MAX_FILE) {
      throw new FerryError('usage', 'PART_TOO_LARGE', `${fs.mountPoint} is ${fs.type}: parts must stay below 4 GiB; give a smaller --part-size`)
    }
    return asked
  }
  return fs.fatLimit ? FAT_PART_SIZE : Math.max(size, 1)
}

const sourceChanged = (path: string) => integrityError('SOURCE_CHANGED', `${path} changed while it was being written; write it again`)

/** Reads a range of the source bundle through shared buffers (see pumpFile); a short read means it changed. */
async function readSource(path: string, offset: number, size: number, use: (chunk: Buffer, position: number) => Promise<unknown>): Promise<void> {
  let got: number
  try {
    got = await pumpFile(path, offset, size, use)
  } catch (err) {
    // A failed read is the build side's disk; a failed write is the stick's, labelled by the caller.
    if ((err as NodeJS.ErrnoException).syscall === 'read' || (err as NodeJS.ErrnoException).syscall === 'open') throw asLocalIoError(err, `reading ${path}`)
    throw err
  }
  if (got !== size) throw sourceChanged(path)
}

/** sha256 of a file already on the medium, hashed on a worker thread. */
async function hashFile(path: string, size: number): Promise<string> {
  const hash = remoteHash()
  try {
    if ((await pumpFile(path, 0, size + 1, (chunk) => hash.update(chunk))) !== size) {
      hash.drop()
      return ''
    }
    return await hash.digest()
  } catch (err) {
    hash.drop()
    throw mediaError(err, `reading ${path}`)
  }
}

/**
 * Writes a bundle to a mounted medium as `<bundle>.part-NNN` files and, last,
 * `<bundle>.parts.json`, so an interrupted write never looks complete. Each
 * part goes to a temp name, is fsynced and renamed; then every byte of it is
 * read back and compared with the bundle, while the next part is written. A
 * rerun keeps the parts already there that match and writes the rest.
 */
export async function writeBundleToMedia(source: MediaSource, dir: string, options: WriteMediaOptions = {}): Promise<WriteMediaResult> {
  const fs = await detectFilesystem(dir)
  const partSize = choosePartSize(fs, source.size, options.partSize)
  const plan = planParts(source.size, partSize)
  const partsName = partsFileName(source.file)
  const progress = options.onProgress
  let current = partsName
  let temp: string | undefined
  try {
    const names = await readdir(dir)
    const mine = names.filter((n) => n === partsName || n.startsWith(`${source.file}.part-`) || n.startsWith(`.${source.file}.`))
    let existingBytes = 0
    for (const n of mine) existingBytes += (await stat(join(dir, n)).catch(() => undefined))?.size ?? 0
    const needed = source.size + 4096
    if (fs.free !== undefined && needed > fs.free + existingBytes) {
      const available = fs.free + existingBytes
      throw new FerryError('io', 'NO_SPACE', `${dir} has ${formatBytes(available)} free but ${source.file} needs ${formatBytes(needed)} (${needed} bytes needed, ${available} available): use a larger stick or free space on it`, {
        details: {needed, available},
      })
    }
    // Temp files of an interrupted write: parts end in .partial, parts.json in .tmp.
    for (const n of mine) if (n.endsWith('.partial') || (n.startsWith('.') && n.endsWith('.tmp'))) await rm(join(dir, n), {force: true})

    let invalidated = false
    // Before the first change, the old parts.json goes, so the stick never claims a bundle it does not hold.
    const invalidate = async () => {
      if (invalidated) return
      invalidated = true
      if (names.includes(partsName)) {
        await rm(join(dir, partsName), {force: true})
        await syncDir(dir)
      }
    }
    const records: PartRecord[] = []
    const fresh: PartRecord[] = []
    // Read-backs of the parts written, each started once its part is on the medium.
    const readBacks: Array<Promise<void>> = []
    let readBackFailed: unknown
    const readingBack = new ReadBackProgress(progress)
    let written = 0
    let done = 0
    let lastReport = 0
    const report = (phase: string, item: string, n: number, of: number) => {
      if (progress && (n - lastReport >= 4 << 20 || n === of)) {
        lastReport = n
        progress({phase, item, done: n, total: of})
      }
    }
    for (const [i, range] of plan.entries()) {
      if (readBackFailed) throw readBackFailed
      current = partFileName(source.file, i)
      const final = join(dir, current)
      const existing = (await stat(final).catch(() => undefined))?.size
      if (existing === range.size) {
        const counter = remoteHash()
        const onStick = hashFile(final, range.size)
        await readSource(source.path, range.offset, range.size, (chunk) => counter.update(chunk))
        const digest = await counter.digest()
        if ((await onStick) === digest) {
          records.push({file: current, size: range.size, sha256: digest})
          done += range.size
          report('write', current, done, source.size)
          continue
        }
      }
      await invalidate()
      if (existing !== undefined) await rm(final, {force: true})
      temp = join(dir, `.${current}.${randomBytes(4).toString('hex')}.partial`)
      const counter = remoteHash()
      const fh = await open(temp, 'wx')
      try {
        // Writes stay in order; the part's hash runs on a worker thread meanwhile.
        let writes: Promise<void> = Promise.resolve()
        await readSource(source.path, range.offset, range.size, (chunk, position) => {
          throwIfInterrupted()
          writes = writes.then(() => writeFullyAt(fh, chunk, position)).then(() => {
            written += chunk.length
            done += chunk.length
            report('write', current, done, source.size)
          })
          return Promise.all([counter.update(chunk), writes])
        })
        await writes
        await fh.sync()
      } finally {
        await fh.close().catch(() => {})
      }
      await rename(temp, final)
      temp = undefined
      await syncDir(dir)
      const record = {file: current, size: range.size, sha256: await counter.digest()}
      records.push(record)
      fresh.push(record)
      if (options.verify !== false) {
        const check = readBack(dir, record, source.path, range.offset, readingBack)
        check.catch((err: unknown) => (readBackFailed ??= err))
        readBacks.push(check)
      }
    }
    // Each range read came whole (readSource refuses a short one); a bundle that grew meanwhile is refused too.
    if ((await stat(source.path).catch(() => undefined))?.size !== source.size) throw sourceChanged(source.path)
    for (const n of names) {
      const m = PART_RE.exec(n)
      if (m && n.startsWith(`${source.file}.part-`) && Number(m[1]) >= plan.length) {
        await invalidate()
        current = n
        await rm(join(dir, n), {force: true})
      }
    }

    readingBack.writing = false
    await Promise.all(readBacks)
    if (readBacks.length) readingBack.end()

    // The whole bundle's sha256 is given where it costs nothing: in one part, it is that part's.
    const whole = records.length === 1 ? {sha256: records[0].sha256} : {}
    const parts: PartsFile = {schema: PARTS_SCHEMA, bundle: source.file, name: source.name, version: source.version, size: source.size, ...whole, partSize, parts: records}
    const bytes = serialiseParts(parts)
    current = partsName
    const old = await readFile(join(dir, partsName)).catch(() => undefined)
    if (!old || !old.equals(bytes)) {
      await invalidate()
      await writeFileAtomic(join(dir, partsName), bytes)
    }
    return {partsFile: join(dir, partsName), parts, filesystem: fs, written, kept: records.length - fresh.length, verified: options.verify !== false}
  } catch (err) {
    if (temp) await rm(temp, {force: true}).catch(() => {})
    throw mediaError(err, `writing ${current} to ${dir}; nothing there looks complete, run "ferry usb write" again once the stick is back (intact parts are kept)`)
  }
}

/** Read-back progress, shown once the writing is over (both at once would only flicker). */
class ReadBackProgress {
  writing = true
  private done = 0
  private total = 0
  private last = 0
  constructor(private readonly listener?: ProgressListener) {}
  add(bytes: number): void {
    this.total += bytes
  }
  took(bytes: number, item: string): void {
    this.done += bytes
    if (this.listener && !this.writing && this.done - this.last >= 4 << 20) {
      this.last = this.done
      this.listener({phase: 'read-back', item, done: this.done, total: this.total})
    }
  }
  end(): void {
    this.listener?.({phase: 'read-back', done: this.done, total: this.total})
  }
}

/**
 * Reads a part back from the medium and compares it byte for byte with the bundle range it was
 * written from (no hashing: the part's sha256 was taken from those bytes as they were written).
 */
async function readBack(dir: string, part: PartRecord, sourcePath: string, offset: number, progress: ReadBackProgress): Promise<void> {
  progress.add(part.size)
  const onStick = join(dir, part.file)
  let same: number
  try {
    same = await compareFiles(onStick, 0, sourcePath, offset, part.size, (n) => progress.took(n, part.file))
  } catch (err) {
    const cause = err instanceof CompareReadError ? err.cause : err
    if (err instanceof CompareReadError && err.side === 'b') throw asLocalIoError(cause, `reading ${sourcePath}`)
    throw mediaError(cause, `reading ${part.file} back from ${dir}`)
  }
  const size = await stat(onStick).then(
    (info) => info.size,
    (err: unknown) => Promise.reject(mediaError(err, `reading ${part.file} back from ${dir}`)),
  )
  if (same === part.size && size === part.size) return
  // Which side changed? The part's sha256 was taken from the bytes as they were written.
  if (size === part.size && (await hashFile(onStick, part.size)) === part.sha256) {
    throw sourceChanged(sourcePath)
  }
  throw integrityError('READBACK_MISMATCH', `${part.file} read back from ${dir} differs from what was written (from byte ${same}): the stick is failing; use another stick`, {part: part.file})
}
