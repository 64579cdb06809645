// What a push plans: the images, the blobs each repository needs and the documents to PUT. Types
// only, shared by the planner and the signature puts.
import type {CosignProof} from '../manifest/lock-format.js'

export interface PushedImage {
  ref: string
  /** where it went: registry/repository:tag */
  target: string
  digest: string
  /** set when the registry refused a platform-filtered index and got its one kept child instead */
  platformManifest?: boolean
}

/** One document to PUT. `fallback`: the one child kept of a platform-filtered index. */
export interface ManifestPut {
  repo: string
  reference: string
  digest: string
  mediaType: string
  bytes: Buffer
  fallback?: {digest: string; mediaType: string; bytes: Buffer}
  image?: PushedImage
  /** a referrers tag index to add this descriptor to (its bytes are made at push, from what the registry lists) */
  referrer?: {mediaType?: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string>}
}

export interface PushPlan {
  /** config and layer digest → repositories that need it, in push order */
  blobs: Map<string, string[]>
  /** every digest of the plan → the images that need it, for messages */
  usedBy: Map<string, string[]>
  /** documents to PUT, children before their index */
  manifests: ManifestPut[]
  images: PushedImage[]
  /** image documents found nowhere (a delta's, whose base is not there): digest → images */
  unavailable: Map<string, string[]>
}

/** An image artifact of bundle.json, the fields a push reads. */
export interface PushImage {
  ref?: string
  name: string
  digest: string
  mediaType: string
  /** a signed image: the signature manifest the bundle carries beside it */
  cosign?: CosignProof
}

/**
 * The bytes of a manifest or index, wherever they are kept: the bundle itself, a base bundle, or
 * (a delta's documents) the registry. `repo` is where the image goes. Undefined when nowhere.
 */
export type DocumentLookup = (digest: string, repo: string) => Promise<Buffer | undefined>
