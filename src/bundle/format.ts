import {z} from 'zod'
import {integrityError} from '../errors.js'
import {ArtifactKind, CosignProof, HealthCheck, NotationProof, UpstreamProof, VmOciSource} from '../manifest/lock-format.js'

export const BUNDLE_SCHEMA = 'ferry.bundle/v1'
export const Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a digest "sha256:<64 hex>"')

export const BundleArtifact = z.strictObject({
  name: z.string().min(1),
  kind: ArtifactKind,
  digest: Digest,
  size: z.number().int().nonnegative(),
  mediaType: z.string().min(1),
  /** images: the full reference; other kinds: absent */
  ref: z.string().optional(),
  /** where the bytes came from (URL or image reference) */
  source: z.string(),
  dest: z.string().optional(),
  platform: z.string().optional(),
  /** images from a multi-platform index: the platforms whose children the bundle carries */
  platforms: z.array(z.string()).optional(),
  /** images: bytes of all the image's blobs (documents, configs, layers) */
  imageSize: z.number().int().nonnegative().optional(),
  version: z.string().optional(),
  upstream: UpstreamProof,
  /** signed images: the key that verified the cosign signature, and the signature manifest the bundle carries (blobs named by it) */
  cosign: CosignProof.optional(),
  /** VM images from an OCI registry: the artifact manifest (a blob of the bundle, as is its config) */
  oci: VmOciSource.optional(),
  /** VM images from an OCI registry: their notation signature manifests (blobs of the bundle) and who signed */
  notation: NotationProof.optional(),
  /** chunked artifacts (vm images, files with `delta: chunks`): the chunk index blob, its size and chunk count */
  chunks: z.strictObject({index: Digest, size: z.number().int().nonnegative(), count: z.number().int().nonnegative()}).optional(),
  /**
   * deltas: the artifact is not carried; it is rebuilt from `pack` (the chunks no base artifact
   * holds) and the base artifacts listed, by the index (see docs/bundle-format.md, "Chunked deltas")
   */
  delta: z
    .strictObject({
      index: Digest,
      pack: Digest,
      packSize: z.number().int().nonnegative(),
      /** chunks not carried in the pack */
      reused: z.number().int().nonnegative(),
      /** the base's artifacts (digest) and their chunk indexes whose chunks the rebuild reads, in this order */
      base: z.array(z.strictObject({digest: Digest, index: Digest})).min(1).max(255),
    })
    .optional(),
})
export type BundleArtifact = z.infer<typeof BundleArtifact>

export const BundleManifest = z.strictObject({
  schema: z.literal(BUNDLE_SCHEMA),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
  version: z.string().min(1),
  created: z.string(),
  expires: z.string(),
  platforms: z.array(z.string()).min(1),
  health: z.array(HealthCheck),
  /** digest of the index.json entry */
  index: Digest,
  artifacts: z.array(BundleArtifact),
  base: z.strictObject({name: z.string(), version: z.string(), digest: Digest}).optional(),
  omitted: z.array(Digest).optional(),
  /** a new trusted key set, signed (with bundle.json) by the current keys; the device adopts it at commit */
  rotation: z
    .strictObject({
      /** armored OpenPGP public keys */
      keys: z.array(z.string().min(1)).min(1),
      threshold: z.number().int().positive(),
      /** fingerprints (40 uppercase hex) the device must refuse from now on */
      revoke: z.array(z.string().regex(/^[0-9A-F]{40,64}$/)).optional(),
    })
    .optional(),
})
export type BundleManifest = z.infer<typeof BundleManifest>
export type KeyRotation = NonNullable<BundleManifest['rotation']>

/** Entry names in the order every bundle has them. */
export const ENTRY = {
  manifest: 'bundle.json',
  signature: 'bundle.json.asc',
  layout: 'oci-layout',
  index: 'index.json',
  blobPrefix: 'blobs/sha256/',
} as const

export const OCI_LAYOUT_BYTES = '{"imageLayoutVersion":"1.0.0"}'

export function bundleFileName(name: string, version: string, baseVersion?: string): string {
  return baseVersion ? `${name}-${version}-from-${baseVersion}.ferry.tar` : `${name}-${version}.ferry.tar`
}

/** bundle.json's bytes as a manifest; anything else is an integrity error. Check the signature over the bytes first. */
export function parseBundleJson(bytes: Buffer): BundleManifest {
  let raw: unknown
  try {
    raw = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw integrityError('BAD_BUNDLE_JSON', 'bundle.json is not valid JSON')
  }
  const parsed = BundleManifest.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw integrityError('BAD_BUNDLE_JSON', `bundle.json is not a Ferry bundle: ${issue.path.join('.') || '(top)'}: ${issue.message}`)
  }
  return parsed.data
}
