import type {BlobStore} from '../../store/blob-store.js'
import type {BlobWriter} from '../../store/blob-writer.js'
import {configPlatform, MAX_CONFIG, type Descriptor, type Platform} from './document.js'
import {openLayoutSource} from './layout-source.js'
import type {ImageReference} from './reference.js'
import type {RegistryOptions} from './registry-client.js'
import {RegistryPool} from './registry-source.js'

/** A manifest or index as fetched, with the digest of its exact bytes. */
export interface FetchedDocument {
  bytes: Buffer
  mediaType: string
  digest: string
}

/**
 * Where an image's bytes come from: a registry, an OCI layout folder or a tar of one. The build
 * and the lock know nothing about HTTP or files: they ask a source for documents and blobs.
 */
export interface ImageSource {
  /** the reference, for messages */
  readonly name: string
  /** the image's top document (manifest or index) by the reference's tag or digest */
  root(): Promise<FetchedDocument>
  /** a manifest or index by digest, checked against it */
  document(desc: Descriptor): Promise<FetchedDocument>
  /** an image config (small: at most 4 MiB), checked against its digest */
  config(desc: Descriptor): Promise<Buffer>
  /** a blob (config, layer) into the store, hashed as it streams in; the bytes that crossed the network */
  fetchBlob(store: BlobStore, desc: Descriptor, onData?: (bytes: number) => void): Promise<number>
  /** a blob straight into `writer` (a region of a bundle archive), checked against its digest; sources that can */
  fetchBlobInto?(writer: BlobWriter, desc: Descriptor, onData?: (bytes: number) => void): Promise<number>
}

/** Opens image sources, sharing one client (connections, tokens) per registry. */
export class ImageSources {
  private readonly registries: RegistryPool

  constructor(options: RegistryOptions = {}) {
    this.registries = new RegistryPool(options)
  }

  async open(ref: ImageReference): Promise<ImageSource> {
    if (ref.transport === 'registry') return this.registries.source(ref)
    return openLayoutSource(ref)
  }
}

/** The one platform a single-manifest image runs on, as its config names it; undefined when it names none (or the config is too large to be one). */
export async function manifestPlatform(source: ImageSource, config: Descriptor): Promise<Platform | undefined> {
  return config.size <= MAX_CONFIG ? configPlatform(await source.config(config)) : undefined
}
