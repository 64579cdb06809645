import type {FetchOptions} from '../sources/http.js'
import type {RegistryOptions} from '../sources/oci/registry-client.js'
import type {BlobStore} from '../store/blob-store.js'
import type {ProgressListener} from '../progress.js'

export interface LockOptions {
  /** blob store for artifacts whose size is only known after downloading them; default the user's cache */
  store?: BlobStore
  /** the moment the lock is resolved at (default: now) */
  now?: Date
  onProgress?: ProgressListener
  http?: FetchOptions
  /** TLS and auth options for the registries of `spec.images` */
  registry?: RegistryOptions
}
