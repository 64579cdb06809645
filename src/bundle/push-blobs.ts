import type {RegistryClient} from '../sources/oci/registry-client.js'
import {hasBlob, mountBlob, uploadBlob} from '../sources/oci/registry-push.js'
import {integrityError} from '../errors.js'
import {Sha256Counter} from '../store/hashing.js'
import {ENTRY} from './format.js'
import type {BundleInput} from './input.js'
import {readTar} from './tar-reader.js'

/** What a push did with blobs: the counters of its result. */
export interface PushTally {
  blobs: {uploaded: number; mounted: number; present: number}
  /** bytes sent */
  bytes: number
}

/** digest → the repositories of the push that still lack it */
export type Lacking = Map<string, string[]>

/**
 * Gets blobs into a registry's repositories at the least cost: a HEAD finds those already
 * there, a cross-repository mount links one another repository holds, and only the rest are
 * sent, read from an archive as it streams by. Remembers where each digest is as it learns it.
 */
export class BlobPusher {
  /** digest → a repository known to hold it */
  private readonly holders = new Map<string, string>()

  constructor(
    private readonly client: RegistryClient,
    readonly tally: PushTally,
  ) {}

  holds(digest: string): boolean {
    return this.holders.has(digest)
  }

  /** HEADs each blob in each repository that needs it; returns those still lacking it. */
  async survey(need: Map<string, string[]>): Promise<Lacking> {
    const lacking: Lacking = new Map()
    for (const [digest, repos] of need) {
      const missing: string[] = []
      for (const repo of repos) {
        if (await hasBlob(this.client, repo, digest)) {
          this.tally.blobs.present++
          this.holders.set(digest, repo)
        } else missing.push(repo)
      }
      if (missing.length) lacking.set(digest, missing)
    }
    return lacking
  }

  /** For blobs no repository that needs them holds: a HEAD in the push's other repositories, to mount from there. */
  async findElsewhere(digests: string[], repos: string[]): Promise<void> {
    for (const digest of digests) {
      for (const repo of repos) {
        if (this.holders.has(digest)) break
        if (await hasBlob(this.client, repo, digest)) this.holders.set(digest, repo)
      }
    }
  }

  /** Mounts each lacking blob from where it is known to be; returns what no mount could link. */
  async mountKnown(lacking: Lacking): Promise<Lacking> {
    const left: Lacking = new Map()
    for (const [digest, repos] of lacking) {
      const from = this.holders.get(digest)
      const unlinked: string[] = []
      for (const repo of repos) {
        if (from && (await mountBlob(this.client, repo, digest, from))) this.tally.blobs.mounted++
        else unlinked.push(repo)
      }
      if (unlinked.length) left.set(digest, unlinked)
    }
    return left
  }

  /**
   * Streams an archive (a bundle or its base) and gets each lacking blob in as it passes: a
   * mount where another repository has it by then, else one upload; a mount the registry
   * refuses after that upload sends the bytes again on another pass, three passes at most.
   */
  async sendFrom(input: BundleInput, lacking: Lacking): Promise<void> {
    let todo = new Map(lacking)
    for (let pass = 0; todo.size > 0; pass++) {
      if (pass >= 3) throw integrityError('PUSH_INCOMPLETE', `${todo.size} blob(s) could not be pushed to ${this.client.registry}`)
      todo = await this.sendPass(input, todo)
    }
  }

  private async sendPass(input: BundleInput, todo: Lacking): Promise<Lacking> {
    const again: Lacking = new Map()
    const unmet = new Set(todo.keys())
    const chunks = input.open()[Symbol.asyncIterator]()
    try {
      for await (const entry of readTar({[Symbol.asyncIterator]: () => chunks})) {
        const digest = entry.path.startsWith(ENTRY.blobPrefix) ? `sha256:${entry.path.slice(ENTRY.blobPrefix.length)}` : ''
        const repos = todo.get(digest)
        const consumed = repos ? await this.sendEntry(digest, repos, entry.size, entry.body, again, input.label) : false
        // Blobs come sorted by digest: once the last one wanted went by, the rest is not read.
        if (unmet.delete(digest) && unmet.size === 0) break
        if (!consumed) for await (const chunk of entry.body) void chunk
      }
    } finally {
      await chunks.return?.()
    }
    if (unmet.size) throw integrityError('MISSING_BLOB', `${input.label} does not hold ${unmet.size} blob(s) it should: ${[...unmet].slice(0, 3).join(', ')}`)
    return again
  }

  /** Sends one blob to the repositories lacking it; true when its bytes were consumed by an upload. */
  private async sendEntry(digest: string, repos: string[], size: number, body: AsyncIterable<Uint8Array>, again: Lacking, label: string): Promise<boolean> {
    let consumed = false
    const retry: string[] = []
    for (const repo of repos) {
      const from = this.holders.get(digest)
      if (from && (await mountBlob(this.client, repo, digest, from))) {
        this.tally.blobs.mounted++
        continue
      }
      if (consumed) {
        retry.push(repo)
        continue
      }
      await uploadBlob(this.client, repo, digest, size, checkedCopy(body, digest, size, label))
      consumed = true
      this.tally.blobs.uploaded++
      this.tally.bytes += size
      this.holders.set(digest, repo)
    }
    if (retry.length) again.set(digest, retry)
    return consumed
  }

  /**
   * Keeps an image document as a plain blob of its repository, where a later delta push finds
   * it by digest (fetchDocument) though the registry would not take it as a manifest.
   */
  async keepAsBlob(repo: string, digest: string, bytes: Buffer): Promise<void> {
    if (await hasBlob(this.client, repo, digest)) return
    await uploadBlob(this.client, repo, digest, bytes.length, (async function* () {
      yield bytes
    })())
    this.tally.blobs.uploaded++
    this.tally.bytes += bytes.length
  }
}

/**
 * A blob's bytes as the upload sends them. Each chunk is copied as it comes: the archive reader
 * reuses its buffers once the next chunk is asked for, while the HTTP client may still hold a
 * chunk it has not written to the socket yet. The copies are hashed, and the last one is held
 * back until the whole blob proved to be the digest that verification checked: bytes that changed
 * since (the file was altered between the two passes) end the upload before the registry could
 * complete it, as exit 3.
 */
export async function* checkedCopy(body: AsyncIterable<Uint8Array>, digest: string, size: number, label: string): AsyncGenerator<Buffer> {
  const counter = new Sha256Counter()
  let held: Buffer | undefined
  for await (const chunk of body) {
    const copy = Buffer.from(chunk)
    counter.update(copy)
    if (held) yield held
    held = copy
  }
  const got = counter.digest()
  if (counter.size !== size || got !== digest) {
    throw integrityError('BLOB_CHANGED', `${label}: blob ${digest} reads as ${counter.size} bytes with sha256 ${got.slice(7)} now, not what was verified: the bundle changed during the push; nothing of it was completed in the registry`)
  }
  if (held) yield held
}
