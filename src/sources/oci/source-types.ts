import type {BlobStore} from '../../store/blob-store.js'
import type {BlobWriter} from '../../store/blob-writer.js'
import type {Descriptor} from './document.js'

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
