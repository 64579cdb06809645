import {link, readdir, readFile, stat, unlink} from 'node:fs/promises'
import path from 'node:path'
import {cannotLink, writeFileAtomic} from './atomic-file.js'

/**
 * Bundles the store keeps as packs: `packs/<sha256>.tar`, a hard link to a bundle archive this
 * store's builds wrote, and `packs/<sha256>.json`, where each blob's bytes lie in it. A build on
 * the same file system as the store downloads image layers straight into the archive it writes
 * (no copy through the store); linking the finished archive here is how those layers enter the
 * store, without a second copy on disk. Every blob in a pack was hashed against its digest as it
 * went in, and the archive was flushed before it got its name.
 *
 * A pack is trusted only while its file is the one indexed (same inode, size and modification
 * time): a bundle edited in place, or replaced, is not. A newer pack that holds every blob of
 * an older one supersedes it, so the store does not keep each month's bundle in full.
 */

interface PackIndexFile {
  schema: 1
  /** sha256 over the archive's first entries (bundle.json, its signature, index.json): with the blobs, what makes its bytes */
  head: string
  size: number
  ino: number
  mtimeMs: number
  /** digest → [offset of its bytes in the archive, size] */
  blobs: Record<string, [number, number]>
}

export interface PackedBlob {
  /** the pack's archive */
  path: string
  offset: number
  size: number
  /** the pack's id (its archive's sha256) */
  pack: string
  /** the archive is still the file that was indexed */
  intact: boolean
}

interface Pack {
  id: string
  index: PackIndexFile
  intact: boolean
  mtimeMs: number
}

/** How long an archive may sit here without its index before it counts as left by a killed build. */
const ORPHAN_AGE_MS = 10 * 60_000

export class Packs {
  private loaded?: Promise<Map<string, PackedBlob>>

  constructor(
    readonly dir: string,
    /** see removeOrphans */
    private readonly orphanAgeMs = ORPHAN_AGE_MS,
  ) {}

  private archive(id: string): string {
    return path.join(this.dir, `${id}.tar`)
  }

  private indexFile(id: string): string {
    return path.join(this.dir, `${id}.json`)
  }

  private async packs(): Promise<Pack[]> {
    const names = await readdir(this.dir).catch(() => [] as string[])
    await this.removeOrphans(names)
    const packs: Pack[] = []
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.json$/.exec(name)
      if (!m) continue
      try {
        const index = JSON.parse(await readFile(this.indexFile(m[1]), 'utf8')) as PackIndexFile
        if (index.schema !== 1 || typeof index.blobs !== 'object' || typeof index.head !== 'string') continue
        const info = await stat(this.archive(m[1]))
        const intact = info.size === index.size && info.ino === index.ino && info.mtimeMs === index.mtimeMs
        packs.push({id: m[1], index, intact, mtimeMs: info.mtimeMs})
      } catch {
        // an index without its archive, or unreadable: not a pack
      }
    }
    return packs
  }

  /** Reads the packs again on the next lookup (another process may have changed them). */
  refresh(): void {
    this.loaded = undefined
  }

  /** Where a blob lies in a pack: an intact pack first, the newest among equals. */
  async locate(digest: string): Promise<PackedBlob | undefined> {
    this.loaded ??= (async () => {
      const found = new Map<string, PackedBlob>()
      const packs = (await this.packs()).sort((a, b) => Number(a.intact) - Number(b.intact) || a.mtimeMs - b.mtimeMs)
      for (const p of packs) {
        for (const [d, [offset, size]] of Object.entries(p.index.blobs)) found.set(d, {path: this.archive(p.id), offset, size, pack: p.id, intact: p.intact})
      }
      return found
    })()
    return (await this.loaded).get(digest)
  }

  /**
   * An intact pack whose bytes are exactly those of the bundle a build is about to write: same
   * head entries, same blobs (the archive's layout follows from them). Linking it is that build.
   */
  async whole(head: string, blobs: Array<{digest: string; size: number}>): Promise<{path: string; id: string; size: number} | undefined> {
    for (const p of await this.packs()) {
      if (!p.intact || p.index.head !== head) continue
      const indexed = Object.entries(p.index.blobs)
      if (indexed.length !== blobs.length) continue
      if (blobs.every((b) => p.index.blobs[b.digest]?.[1] === b.size)) return {path: this.archive(p.id), id: p.id, size: p.index.size}
    }
    return undefined
  }

  /**
   * Keeps `archive` (a finished, flushed bundle) as a pack holding `blobs`. False when it cannot
   * be linked from here (another file system); then nothing changes.
   */
  async add(archive: string, id: string, head: string, blobs: Array<{digest: string; offset: number; size: number}>): Promise<boolean> {
    const target = this.archive(id)
    await unlink(target).catch(() => undefined)
    try {
      await link(archive, target)
    } catch (err) {
      if (cannotLink(err)) return false
      throw err
    }
    const info = await stat(target)
    const index: PackIndexFile = {schema: 1, head, size: info.size, ino: info.ino, mtimeMs: info.mtimeMs, blobs: Object.fromEntries(blobs.map((b) => [b.digest, [b.offset, b.size]]))}
    await writeFileAtomic(this.indexFile(id), JSON.stringify(index) + '\n')
    for (const other of await this.packs()) {
      if (other.id === id) continue
      if (Object.keys(other.index.blobs).every((d) => d in index.blobs)) await this.drop(other.id)
    }
    this.loaded = undefined
    return true
  }

  /**
   * A build killed between linking its bundle here and writing the index leaves an archive no
   * index names: removed once it is clearly not a build in progress (linked, which sets its
   * change time, over ORPHAN_AGE_MS ago). An index without its archive is removed at once.
   */
  private async removeOrphans(names: string[]): Promise<void> {
    const present = new Set(names)
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.(tar|json)$/.exec(name)
      if (!m) continue
      const other = `${m[1]}.${m[2] === 'tar' ? 'json' : 'tar'}`
      if (present.has(other)) continue
      const file = path.join(this.dir, name)
      if (m[2] === 'tar') {
        const info = await stat(file).catch(() => undefined)
        if (!info || Date.now() - info.ctimeMs < this.orphanAgeMs) continue
      }
      await unlink(file).catch(() => undefined)
    }
  }

  /** Forgets a pack (found damaged, or superseded). */
  async drop(id: string): Promise<void> {
    await unlink(this.indexFile(id)).catch(() => undefined)
    await unlink(this.archive(id)).catch(() => undefined)
    this.loaded = undefined
  }
}
