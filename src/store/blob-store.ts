import {chmod, mkdir, open, rename, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {mapPool} from '../sources/pool.js'
import {asLocalIoError} from '../errors.js'
import {fsyncFile} from './atomic-file.js'
import {makeFolder} from './folder.js'
import {type BlobExpectation, type BlobInfo, checkBlob} from './blob-check.js'
import {BlobWriter} from './blob-writer.js'
import {digestHex, sha256Of, toDigest} from './hashing.js'
import {Packs} from './packs.js'
import {isMissing, PartialDownloads, removeIfPresent, uniqueSuffix} from './partials.js'

export interface BlobStoreOptions {
  /**
   * fsync every blob before it lands (default false). The store is a cache: a blob lands without
   * a flush, and one found in it later is hashed again wherever its bytes are used (see
   * `trusted`), so one damaged by a crash is caught there and fetched anew. A build seals the
   * blobs it used once its bundle is written (`seal`): flushed, then made read-only; a sealed
   * blob is trusted as it is.
   */
  durable?: boolean
}

/** No write permission for anyone: how a sealed blob (flushed to disk after it was verified) is told apart. */
const SEALED_MODE = 0o444

/**
 * Content-addressed blob store on disk:
 * - `blobs/sha256/<hex>`: verified blobs, never modified once in place (read-only by convention);
 * - `tmp/`: blobs being ingested, under names unique to one process and call;
 * - `partial/<hex>`: an interrupted download of the blob `<hex>`, kept so a later run can resume it;
 *   `partial/<hex>.<pid>.<rand>` is one being downloaded right now by process `<pid>`.
 * Two processes may share a store: every write goes to a unique name and lands with an atomic rename,
 * and a partial is taken by renaming it, which only one claimant can win.
 */
export class BlobStore {
  private ready?: Promise<void>
  private readonly durable: boolean
  /** blobs this instance hashed as they landed (or found again after hashing them) */
  private readonly checked = new Set<string>()
  /** bundles kept whole, whose blobs count as stored (see packs.ts) */
  readonly packs: Packs
  private readonly partials: PartialDownloads

  constructor(
    readonly root: string,
    options: BlobStoreOptions = {},
  ) {
    this.durable = options.durable ?? false
    this.packs = new Packs(path.join(root, 'packs'))
    this.partials = new PartialDownloads(path.join(root, 'partial'), this.durable)
  }

  /** The store folder: `flag`, else `$FERRY_STORE`, else `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry`. */
  static defaultRoot(flag?: string): string {
    if (flag) return path.resolve(flag)
    if (process.env.FERRY_STORE) return path.resolve(process.env.FERRY_STORE)
    if (process.env.XDG_CACHE_HOME) return path.join(path.resolve(process.env.XDG_CACHE_HOME), 'ferry')
    return path.join(os.homedir(), '.cache', 'ferry')
  }

  private get blobDir() {
    return path.join(this.root, 'blobs', 'sha256')
  }

  private get tmpDir() {
    return path.join(this.root, 'tmp')
  }

  /** Creates the store's folders if missing (safe to call again). */
  init(): Promise<void> {
    this.ready ??= (async () => {
      try {
        await makeFolder(this.root, 'the blob store (--store, $FERRY_STORE)')
        for (const dir of [this.blobDir, this.tmpDir, this.partials.dir, this.packs.dir]) await mkdir(dir, {recursive: true})
      } catch (err) {
        this.ready = undefined
        throw asLocalIoError(err, `cannot create the blob store at ${this.root}`)
      }
    })()
    return this.ready
  }

  /** Where the blob with this digest lives (whether or not it is there yet). */
  pathOf(digest: string): string {
    return path.join(this.blobDir, digestHex(digest))
  }

  /** The blob's size when the store holds it, and whether it is sealed (see `seal`). */
  async has(digest: string): Promise<{size: number; sealed: boolean} | undefined> {
    try {
      const info = await stat(this.pathOf(digest))
      return info.isFile() ? {size: info.size, sealed: (info.mode & 0o222) === 0} : undefined
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
  }

  /**
   * Streams `source` into the store, hashing in the same pass, and checks it against `expect`.
   * On a mismatch nothing is kept (integrity error, exit 3); local write errors are exit 6.
   * When the expected blob is already stored, the source is drained and the stored blob returned.
   */
  async ingest(source: Readable | AsyncIterable<Uint8Array>, expect: BlobExpectation = {}): Promise<BlobInfo> {
    await this.init()
    const digest = expect.digest === undefined ? undefined : toDigest(expect.digest, expect.what)
    const present = digest === undefined ? undefined : await this.has(digest)
    if (digest !== undefined && present) {
      for await (const chunk of source as AsyncIterable<Uint8Array>) void chunk
      return this.check({digest, size: present.size}, {...expect, digest}, undefined)
    }
    const writer = await BlobWriter.create(path.join(this.tmpDir, uniqueSuffix()), {durable: this.durable})
    try {
      await writer.append(source as AsyncIterable<Uint8Array>, {maxSize: expect.size, what: expect.what})
    } catch (err) {
      await this.discard(writer)
      throw err
    }
    return this.commit(writer, {...expect, digest})
  }

  /** Where an interrupted download of this blob is parked for a later run. */
  partialPath(digest: string): string {
    return this.partials.pathOf(digest)
  }

  /**
   * Takes, for this process alone, the partial download of `digest` to continue it (see
   * partials.ts); the writer's `size` says how many bytes are already there. End with `commit`,
   * `park` or `discard`.
   */
  async claimPartial(digest: string): Promise<BlobWriter> {
    await this.init()
    return this.partials.claim(digest)
  }

  /**
   * Verifies a finished writer against `expect` and moves it into place (idempotent: the same blob
   * stored twice is one file). On a mismatch the bytes are removed and an integrity error thrown.
   */
  async commit(writer: BlobWriter, expect: BlobExpectation = {}): Promise<BlobInfo> {
    let result: BlobInfo
    try {
      result = await writer.finish()
    } catch (err) {
      await this.discard(writer)
      throw asLocalIoError(err, `cannot finish ${writer.path}`)
    }
    const digest = expect.digest === undefined ? undefined : toDigest(expect.digest, expect.what)
    try {
      this.check(result, {...expect, digest}, writer)
    } catch (err) {
      await this.discard(writer)
      throw err
    }
    try {
      await rename(writer.path, this.pathOf(result.digest))
    } catch (err) {
      await this.discard(writer)
      throw asLocalIoError(err, `cannot move ${writer.path} into the blob store`)
    }
    this.checked.add(result.digest)
    return result
  }

  /** Parks the first bytes of `digest`, downloaded elsewhere (into a bundle that was not finished), for a later run to resume. */
  async keepPartial(bytes: AsyncIterable<Uint8Array>, digest: string): Promise<void> {
    await this.init()
    const writer = await BlobWriter.create(`${this.partialPath(digest)}.${uniqueSuffix()}`, {durable: this.durable})
    try {
      await writer.append(bytes)
    } catch (err) {
      await this.discard(writer)
      throw err
    }
    await this.park(writer, digest)
  }

  /** Keeps an unfinished download for a later run (an empty one is simply removed). */
  park(writer: BlobWriter, digest: string): Promise<void> {
    return this.partials.park(writer, digest)
  }

  /** Throws away an unfinished write. */
  async discard(writer: BlobWriter): Promise<void> {
    await writer.close()
    await removeIfPresent(writer.path)
  }

  /**
   * True when the blob's bytes need not be hashed again where they are used: its own file, which
   * this instance hashed (as it landed, or on a use: `markChecked`) or which is sealed, or else an
   * intact pack holding it (see `locate`).
   */
  async trusted(digest: string): Promise<boolean> {
    return (await this.locate(digest))?.trusted ?? false
  }

  /** Records that the blob's bytes in the store were just hashed and matched its digest. */
  markChecked(digest: string): void {
    this.checked.add(digest)
  }

  /**
   * Seals the blobs this instance checked, among `digests`: each is flushed to disk, then made
   * read-only, in that order, so a crash can lose the mark but never leave a marked blob whose
   * bytes did not reach the disk. Later runs use a sealed blob without hashing it again (the way
   * a container runtime trusts its content store once content is committed). Best effort: a
   * blob that cannot be sealed (a read-only or permission-less file system) stays unsealed.
   */
  async seal(digests: Iterable<string>): Promise<number> {
    const todo = [...new Set(digests)].filter((d) => this.checked.has(d))
    const done = await mapPool(todo, 4, async (digest) => {
      const file = this.pathOf(digest)
      try {
        if (((await stat(file)).mode & 0o222) === 0) return false
        await fsyncFile(file)
        await chmod(file, SEALED_MODE)
        return true
      } catch {
        // left unsealed: it is hashed again where it is next used
        return false
      }
    })
    return done.filter(Boolean).length
  }

  /**
   * Where the blob's bytes are: its own file, else a pack (a bundle kept whole). `trusted`: they
   * need not be hashed again where they are used (see `trusted` and packs.ts).
   */
  async locate(digest: string): Promise<{path: string; offset: number; size: number; trusted: boolean} | undefined> {
    const loose = await this.has(digest)
    if (loose) return {path: this.pathOf(digest), offset: 0, size: loose.size, trusted: loose.sealed || this.checked.has(digest)}
    const packed = await this.packs.locate(digest)
    return packed && {path: packed.path, offset: packed.offset, size: packed.size, trusted: packed.intact}
  }

  /**
   * The bytes of a small blob (an image manifest or index) when the store holds them, loose or in
   * a pack, and they still hash to `digest`; undefined otherwise, and the caller fetches them.
   */
  async readSmall(digest: string, size: number): Promise<Buffer | undefined> {
    const at = await this.locate(digest)
    if (!at || at.size !== size) return undefined
    const file = await open(at.path, 'r').catch(() => undefined)
    if (!file) return undefined
    try {
      const bytes = Buffer.alloc(size)
      const {bytesRead} = await file.read(bytes, 0, size, at.offset)
      return bytesRead === size && sha256Of(bytes) === digest ? bytes : undefined
    } finally {
      await file.close()
    }
  }

  /** Removes a blob found damaged, so that the next use fetches it again (a pack holding it goes whole). */
  async evict(digest: string): Promise<void> {
    this.checked.delete(digest)
    if (await this.has(digest)) return removeIfPresent(this.pathOf(digest))
    const packed = await this.packs.locate(digest)
    if (packed) await this.packs.drop(packed.pack)
  }

  private check(actual: BlobInfo, expect: BlobExpectation, writer: BlobWriter | undefined): BlobInfo {
    return checkBlob(actual, expect, expect.what ?? writer?.path ?? 'blob')
  }
}
