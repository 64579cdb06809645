import {randomBytes} from 'node:crypto'
import {existsSync, readFileSync, statSync} from 'node:fs'
import {type FileHandle, mkdir, open, readdir, rename, rm} from 'node:fs/promises'
import {join} from 'node:path'
import type {BlobSink} from '../bundle/verify.js'
import {mkdirDurable, syncDir} from '../store/atomic-file.js'
import {asLocalIoError} from '../errors.js'
import type {DevicePaths} from './paths.js'
import {checkpoint} from './testing.js'

/** At most this many finished blobs wait for their fsync + rename while the next ones stream in. */
const MAX_PENDING = 8

/**
 * The device's shared blob store, `<base>/blobs/sha256/<hex>`, fed by verification: each blob streams into a
 * temp file and is moved into place (fsync, then rename) only once verify has matched its digest. A blob
 * already there is not written again (verify still hashes it). The fsync of one blob overlaps the next
 * blob's bytes; `flush()` waits for all of them and makes the renames durable.
 */
export class DeviceBlobs {
  readonly dir: string
  private pending: Array<Promise<void>> = []
  private failure: unknown
  /** blobs and bytes written by this import (blobs already present are not counted) */
  written = {blobs: 0, bytes: 0}

  constructor(private readonly paths: DevicePaths) {
    this.dir = join(paths.blobs, 'sha256')
  }

  /** Creates the folders; under the device lock, anything left in tmp/ is a killed import's and is removed. */
  async init(): Promise<void> {
    await mkdirDurable(this.dir)
    // tmp/ is a staging folder: nothing in it counts, so its entries need no flush
    await rm(this.paths.tmp, {recursive: true, force: true})
    await mkdir(this.paths.tmp, {recursive: true})
  }

  /** Removes what an import left in tmp/ (nothing there is complete); on a full disk this makes room. */
  async dropTemp(): Promise<void> {
    for (const name of await readdir(this.paths.tmp).catch(() => [] as string[])) await rm(join(this.paths.tmp, name), {recursive: true, force: true})
  }

  pathOf(digest: string): string {
    return join(this.dir, digest.slice('sha256:'.length))
  }

  has(digest: string): boolean {
    return existsSync(this.pathOf(digest))
  }

  /** Bytes of a small stored blob (image manifests and indexes of a delta's base), else undefined. */
  content(digest: string, limit = 4 << 20): Buffer | undefined {
    try {
      if (statSync(this.pathOf(digest)).size > limit) return undefined
      return readFileSync(this.pathOf(digest))
    } catch {
      return undefined
    }
  }

  /** The sink verify writes one blob into; undefined when the store already holds it. */
  async sink(digest: string): Promise<BlobSink | undefined> {
    if (this.failure) throw this.failure
    if (this.has(digest)) return undefined
    const temp = join(this.paths.tmp, `${digest.slice(7, 23)}.${process.pid}.${randomBytes(4).toString('hex')}`)
    const target = this.pathOf(digest)
    let fh: FileHandle | undefined = await open(temp, 'wx', 0o644).catch((err) => {
      throw asLocalIoError(err, `cannot write to the device blob store ${this.paths.tmp}`)
    })
    let size = 0
    const close = async () => {
      const h = fh
      fh = undefined
      await h?.close()
    }
    return {
      // Written before resolving: the reader reuses a chunk's memory once this returns.
      write: async (chunk) => {
        size += chunk.length
        try {
          for (let off = 0; off < chunk.length; ) off += (await fh!.write(chunk, off, chunk.length - off)).bytesWritten
        } catch (err) {
          throw asLocalIoError(err, `writing blob ${digest} to ${temp}`)
        }
      },
      commit: async () => {
        this.written.blobs++
        this.written.bytes += size
        const h = fh!
        fh = undefined
        const done = (async () => {
          try {
            await h.sync()
            await h.close()
            await rename(temp, target)
          } catch (err) {
            await h.close().catch(() => undefined)
            await rm(temp, {force: true})
            this.failure ??= asLocalIoError(err, `storing blob ${digest}`)
          }
        })()
        this.pending.push(done)
        if (this.pending.length >= MAX_PENDING) await this.pending.shift()
        checkpoint('verifying:verify:blob')
      },
      abort: async () => {
        await close().catch(() => undefined)
        await rm(temp, {force: true})
      },
    }
  }

  /** Waits for every blob's fsync and rename, then makes the renames durable; throws the first write error. */
  async flush(): Promise<void> {
    await Promise.all(this.pending)
    this.pending = []
    if (this.failure) throw this.failure
    await syncDir(this.dir)
  }
}
