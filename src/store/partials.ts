import {randomBytes} from 'node:crypto'
import {readdir, rename, stat, unlink} from 'node:fs/promises'
import path from 'node:path'
import {BlobWriter} from './blob-writer.js'
import {digestHex} from './hashing.js'
import {processAlive} from './pid-lock.js'

export const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT'

/** A file name part no other process or call uses: `<pid>.<random>`. */
export const uniqueSuffix = () => `${process.pid}.${randomBytes(6).toString('hex')}`

/** Renames `from` to `to`; false when `from` is gone (another claimant took it first). */
export async function renameIfPresent(from: string, to: string): Promise<boolean> {
  try {
    await rename(from, to)
    return true
  } catch (err) {
    if (isMissing(err)) return false
    throw err
  }
}

export async function removeIfPresent(file: string): Promise<void> {
  await unlink(file).catch((err) => {
    if (!isMissing(err)) throw err
  })
}

/**
 * Interrupted downloads in the store's `partial/` folder: `<hex>` is one parked for a later run,
 * `<hex>.<pid>.<rand>` one being downloaded right now by process `<pid>`. A partial is taken by
 * renaming it, which only one claimant can win.
 */
export class PartialDownloads {
  constructor(
    readonly dir: string,
    private readonly durable: boolean,
  ) {}

  /** Where an interrupted download of this blob is parked for a later run. */
  pathOf(digest: string): string {
    return path.join(this.dir, digestHex(digest))
  }

  /**
   * Takes, for this process alone, the partial download of `digest`: the parked one, else one left
   * by a process that no longer exists (killed mid-download), else a new empty file.
   */
  async claim(digest: string): Promise<BlobWriter> {
    const hex = digestHex(digest)
    const mine = path.join(this.dir, `${hex}.${uniqueSuffix()}`)
    if (await renameIfPresent(this.pathOf(digest), mine)) return BlobWriter.resume(mine, {durable: this.durable})

    const orphan = new RegExp(`^${hex}\\.(\\d+)\\.[0-9a-f]+$`)
    const candidates: {file: string; size: number}[] = []
    for (const name of await readdir(this.dir)) {
      const pid = Number(orphan.exec(name)?.[1] ?? NaN)
      if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue
      const file = path.join(this.dir, name)
      const info = await stat(file).catch(() => undefined)
      if (info) candidates.push({file, size: info.size})
    }
    candidates.sort((a, b) => b.size - a.size)
    for (const {file} of candidates) if (await renameIfPresent(file, mine)) return BlobWriter.resume(mine, {durable: this.durable})
    return BlobWriter.create(mine, {durable: this.durable})
  }

  /** Keeps an unfinished download for a later run (an empty one is simply removed). */
  async park(writer: BlobWriter, digest: string): Promise<void> {
    await writer.close()
    const parked = this.pathOf(digest)
    const existing = await stat(parked).catch(() => undefined)
    // Another process may have parked its own meanwhile: keep whichever got further.
    if (writer.size === 0 || (existing && existing.size >= writer.size)) return removeIfPresent(writer.path)
    await rename(writer.path, parked)
  }
}
