// What the documents need to know of a bundle's artifacts: the fields of bundle.json's entries
// (bundle/format.ts), declared here so this module depends on nothing above it.

export interface DescribedArtifact {
  name: string
  kind: 'vm' | 'k3s' | 'kubernetes' | 'image' | 'file'
  digest: string
  size: number
  mediaType: string
  source: string
  ref?: string
  dest?: string
  platform?: string
  platforms?: string[]
  version?: string
  upstream: {verifiedBy: string; checksumUrl?: string; signatureUrl?: string; key?: string}
  cosign?: {key: string; keyFile: string; form: string; via: string; manifest: {mediaType: string; digest: string; size: number}}
  chunks?: {index: string; size: number; count: number}
  oci?: {ref: string; manifest: {digest: string}}
  notation?: {signatures: Array<{manifest: {digest: string}; envelope: {mediaType: string}; subject: string}>; ca?: {file: string; fingerprint: string}; verified?: {signature: string; subject: string}}
}

export interface BlobDescriptor {
  mediaType: string
  digest: string
  size: number
}

/** An image's contents as the bundle carries them: each platform manifest with its config and layers. */
export interface ImageContents {
  /** the artifact's digest names an index (its children are `manifests`), not one manifest */
  index: boolean
  manifests: Array<BlobDescriptor & {platform?: string; config: BlobDescriptor; layers: BlobDescriptor[]}>
}

/** The bundle a document describes: bundle.json's fields that come from the lock. */
export interface DescribedBundle {
  name: string
  version: string
  /** the lock's resolution time: the only time the documents carry */
  created: string
  expires: string
  platforms: string[]
}

export const hexOf = (digest: string) => digest.slice('sha256:'.length)
