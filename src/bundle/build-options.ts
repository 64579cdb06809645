import type {RegistryOptions} from '../sources/oci/registry-client.js'
import type {BlobStore} from '../store/blob-store.js'
import type {Signer} from '../trust/sign.js'
import type {ProgressListener} from '../progress.js'
import type {BaseIndexes} from './chunked.js'
import type {BundleArtifact, KeyRotation} from './format.js'

export interface BuildOptions {
  store: BlobStore
  signers: Signer[]
  outDir: string
  /** parallel downloads */
  concurrency?: number
  onProgress?: ProgressListener
  /** "now" for the expiry check; tests only */
  now?: Date
  /** files this large or larger go through the store even when others go straight into the bundle; default 1 GiB */
  directFilesBelow?: number
  /** registry TLS and auth options for the lock's images */
  registry?: RegistryOptions
  /** image blob downloads at once, across all images; default 4 (more only adds contention on a fast link) */
  imageJobs?: number
  /** a new trusted key set for devices, carried inside the signed bundle.json (see rotation.ts) */
  rotation?: KeyRotation
  /** build a delta: leave out the blobs this base already carries (see delta.ts) */
  since?: DeltaBase
}

/** The bundle a delta is built against: the sites that have it already hold its blobs. */
export interface DeltaBase {
  name: string
  version: string
  /** sha256 of the base's bundle.json */
  digest: string
  has(digest: string): boolean
  /** the base's chunked artifacts' indexes, for chunked deltas (absent: changed artifacts travel whole) */
  chunkIndexes?: BaseIndexes
  /** the base's artifacts, whose chunk index entries a delta repeats for what it leaves out */
  manifest?: {artifacts: BundleArtifact[]}
}
