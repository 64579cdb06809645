import type {BlobStore} from '../../store/blob-store.js'
import type {BlobWriter} from '../../store/blob-writer.js'
import {integrityError} from '../../errors.js'
import {withRetries} from '../http-retry.js'
import {alignRange, appendBody, downloadInto, downloadResumable, rangeExhausted} from '../resumable.js'
import {MAX_CONFIG, type Descriptor} from './document.js'
import type {FetchedDocument, ImageSource} from './source-types.js'
import {MANIFEST_ACCEPT} from './media-types.js'
import {readCapped} from './registry-document.js'
import {formatReference, type RegistryReference} from './reference.js'
import {type RegistryAnswer, RegistryClient, type RegistryOptions} from './registry-client.js'
import {sha256Of} from '../../store/hashing.js'

const MAX_MANIFEST = 4 << 20

const sha = sha256Of

/** One client per registry, shared by every image on it. */
export class RegistryPool {
  private readonly clients = new Map<string, RegistryClient>()

  constructor(private readonly options: RegistryOptions) {}

  client(registry: string): RegistryClient {
    let c = this.clients.get(registry)
    if (!c) {
      c = new RegistryClient(registry, this.options)
      this.clients.set(registry, c)
    }
    return c
  }

  source(ref: RegistryReference): ImageSource {
    return new RegistrySource(this.client(ref.registry), ref)
  }
}

/** GETs a manifest by tag or digest, reads at most 4 MiB, and ties the bytes to their digest. */
export async function getManifest(client: RegistryClient, repository: string, reference: string, what: string): Promise<FetchedDocument> {
  return withRetries(client.policy, client.classify(what), async () => {
      const res = await client.request(repository, `/v2/${repository}/manifests/${reference}`, {headers: {Accept: MANIFEST_ACCEPT}})
      if (!res.ok) throw await client.failure(res, what)
      const bytes = await readCapped(res.body, MAX_MANIFEST, `${what}: the manifest is larger than ${MAX_MANIFEST} bytes`)
      const digest = sha(bytes)
      const claimed = res.headers.get('docker-content-digest')
      if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
        throw integrityError('DIGEST_MISMATCH', `${what}: the registry says the manifest is ${claimed}, its bytes hash to ${digest}`)
      }
      if (reference.startsWith('sha256:') && reference !== digest) {
        throw integrityError('DIGEST_MISMATCH', `${what}: asked for ${reference}, the bytes received hash to ${digest}; the registry or a proxy changed them`)
      }
      return {bytes, digest, mediaType: (res.headers.get('content-type') ?? '').split(';')[0].trim()}
  })
}

class RegistrySource implements ImageSource {
  readonly name: string

  constructor(
    private readonly client: RegistryClient,
    private readonly ref: RegistryReference,
  ) {
    this.name = formatReference(ref)
  }

  root(): Promise<FetchedDocument> {
    return getManifest(this.client, this.ref.repository, this.ref.digest ?? this.ref.tag ?? 'latest', this.name)
  }

  async document(desc: Descriptor): Promise<FetchedDocument> {
    const got = await getManifest(this.client, this.ref.repository, desc.digest, `${this.name} (${desc.digest})`)
    if (got.bytes.length !== desc.size) throw integrityError('SIZE_MISMATCH', `${this.name}: ${desc.digest} is ${got.bytes.length} bytes, its descriptor says ${desc.size}`)
    return got
  }

  async config(desc: Descriptor): Promise<Buffer> {
    const what = `${this.name} config ${desc.digest}`
    const tooLarge = `${what}: larger than ${MAX_CONFIG} bytes`
    if (desc.size > MAX_CONFIG) throw integrityError('TOO_LARGE', tooLarge)
    return withRetries(this.client.policy, this.client.classify(what), async () => {
      const res = await this.client.request(this.ref.repository, `/v2/${this.ref.repository}/blobs/${desc.digest}`)
      if (!res.ok) throw await this.client.failure(res, what)
      const bytes = await readCapped(res.body, MAX_CONFIG, tooLarge)
      if (bytes.length !== desc.size || sha(bytes) !== desc.digest) {
        throw integrityError('DIGEST_MISMATCH', `${what}: the bytes received (${bytes.length}) hash to ${sha(bytes)}; the registry or a proxy changed them`)
      }
      return bytes
    })
  }

  /**
   * Downloads a blob into the store unless it is there: hashed while written, retried with
   * backoff, resumed with Range from the bytes already kept (this run's or an interrupted
   * earlier one's), and kept only when digest and size match.
   */
  async fetchBlob(store: BlobStore, desc: Descriptor, onData?: (bytes: number) => void): Promise<number> {
    const present = await store.has(desc.digest)
    if (present && present.size === desc.size) return 0
    let fetched = 0
    await downloadResumable(store, this.job(desc), this.attempt(desc, (n) => {
      fetched += n
      onData?.(n)
    }))
    return fetched
  }

  /** Downloads a blob into `writer` (a region of a bundle archive), with the same retries and resume, checked against its digest. */
  async fetchBlobInto(writer: BlobWriter, desc: Descriptor, onData?: (bytes: number) => void): Promise<number> {
    let fetched = 0
    await downloadInto(writer, this.job(desc), this.attempt(desc, (n) => {
      fetched += n
      onData?.(n)
    }))
    return fetched
  }

  private job(desc: Descriptor) {
    const what = `${this.name} blob ${desc.digest}`
    return {digest: desc.digest, size: desc.size, what, policy: this.client.policy, classify: this.client.classify(what)}
  }

  /** One GET of the blob from `from` on, appended to the writer; the idle timer covers every gap. */
  private attempt(desc: Descriptor, onData: (bytes: number) => void) {
    const what = `${this.name} blob ${desc.digest}`
    return async (writer: BlobWriter, from: number): Promise<void> => {
      let res: RegistryAnswer | undefined
      try {
        res = await this.client.request(this.ref.repository, `/v2/${this.ref.repository}/blobs/${desc.digest}`, {
          headers: from > 0 ? {Range: `bytes=${from}-`} : {},
        })
        if (await rangeExhausted(res, from, writer)) return
        if (!res.ok) throw await this.client.failure(res, what)
        await alignRange(res, from, writer, what)
        await appendBody(writer, res.body, desc.size, what, {maxSize: desc.size, what, onData})
      } finally {
        // an answer whose body was not read (a 416, a failure) closes its connection now
        res?.close()
      }
    }
  }
}
