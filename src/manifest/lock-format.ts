import {z} from 'zod'

/** How an artifact's bytes were tied to something upstream published. */
export const UpstreamProof = z.strictObject({
  /** sha256: pinned in the manifest; checksum-file: listed in an upstream checksum file;
   *  checksum-file+pgp: ... whose detached OpenPGP signature verified; registry: OCI digest;
   *  cosign: OCI digest, signed with a cosign key the manifest names */
  verifiedBy: z.enum(['sha256', 'checksum-file', 'checksum-file+pgp', 'registry', 'cosign']),
  checksumUrl: z.string().optional(),
  signatureUrl: z.string().optional(),
  /** fingerprint of the key that signed the checksum file (OpenPGP), or the image (cosign: sha256 of the DER public key) */
  key: z.string().optional(),
})
export type UpstreamProof = z.infer<typeof UpstreamProof>

/** An image's cosign signature, as checked when the lock was made (and again at build). */
export const CosignProof = z.strictObject({
  /** `sha256:<hex>` of the key's DER SubjectPublicKeyInfo */
  key: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  /** the key file as the manifest names it */
  keyFile: z.string().min(1),
  /** the key itself (PKIX PEM): a build from the lock checks the signature with it */
  publicKey: z.string().min(1),
  /** simplesigning: cosign 1.x/2.x `.sig` tag; sigstore-bundle: cosign 3.x referrer */
  form: z.enum(['simplesigning', 'sigstore-bundle']),
  /** the tag it was found under, or `referrers` (the registry's referrers API) */
  via: z.string().min(1),
  /** the signature manifest */
  manifest: z.strictObject({mediaType: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/), size: z.number().int().nonnegative()}),
})
export type CosignProof = z.infer<typeof CosignProof>

const LockedDescriptor = z.strictObject({mediaType: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/), size: z.number().int().nonnegative()})

/** An SBOM the image's registry holds for it (an OCI referrer), pinned when the lock was made. */
export const ImageSbom = z.strictObject({
  /** application/vnd.cyclonedx+json or application/spdx+json; a cosign attestation: application/vnd.dsse.envelope.v1+json */
  artifactType: z.string().min(1),
  /** a cosign attestation: its in-toto predicate type (https://cyclonedx.org/bom, https://spdx.dev/Document) */
  predicateType: z.string().min(1).optional(),
  /** the referrer manifest */
  manifest: LockedDescriptor,
  /** its layer: the SBOM document itself */
  document: LockedDescriptor,
  /** `referrers` (the registry's API), or the tag it was found under (`sha256-<hex>`, `sha256-<hex>.att`) */
  via: z.string().min(1),
  /** a cosign attestation whose signature the image's cosign key verified: that key (`sha256:` of its DER) */
  key: z.string().regex(/^sha256:[0-9a-f]{64}$/).optional(),
})
export type ImageSbom = z.infer<typeof ImageSbom>

export const ArtifactKind = z.enum(['vm', 'k3s', 'kubernetes', 'image', 'file'])
export type ArtifactKind = z.infer<typeof ArtifactKind>

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 in lowercase hex')

export const LockedArtifact = z.strictObject({
  /** unique within the bundle, e.g. "k3s/k3s-airgap-images-amd64.tar.zst" */
  name: z.string().min(1),
  kind: ArtifactKind,
  url: z.string().min(1),
  sha256: Sha256Hex,
  size: z.number().int().nonnegative(),
  mediaType: z.string().min(1),
  /** where the device installs it (binaries, files), relative to the slot */
  dest: z.string().optional(),
  /** linux/amd64 etc., when the artifact is for one platform */
  platform: z.string().optional(),
  /** version of what it carries (k3s/kubernetes version) */
  version: z.string().optional(),
  /** images: the full reference the image is named by in the bundle (docker.io/library/nginx:1.27) */
  ref: z.string().optional(),
  /** images from a multi-platform index: the platforms kept (the index's other children are left out) */
  platforms: z.array(z.string()).optional(),
  /** images: bytes of everything the image carries (documents, configs, layers; shared layers counted in each) */
  imageSize: z.number().int().nonnegative().optional(),
  upstream: UpstreamProof,
  /** images that must be signed: which cosign key verified which signature */
  cosign: CosignProof.optional(),
  /** images: the SBOMs their registry holds for them, carried into the bundle */
  sboms: z.array(ImageSbom).optional(),
  /** chunked deltas (see bundle/chunked.ts): `chunks` for files that asked for it, `whole` for VM images that opted out */
  delta: z.enum(['chunks', 'whole']).optional(),
})
export type LockedArtifact = z.infer<typeof LockedArtifact>

export const HealthCheck = z.strictObject({
  name: z.string().min(1),
  /** a shell command; passes on exit 0 */
  run: z.string().optional(),
  /** an HTTP GET; passes on a 2xx answer */
  http: z.string().optional(),
  /** seconds */
  timeout: z.number().positive().default(60),
  retries: z.number().int().nonnegative().default(0),
  /** seconds between retries */
  interval: z.number().nonnegative().default(5),
})
export type HealthCheck = z.infer<typeof HealthCheck>

export const LockFile = z.strictObject({
  schema: z.literal('ferry.lock/v1'),
  name: z.string().min(1),
  version: z.string().min(1),
  /** when the lock was resolved (ISO 8601, UTC); also the bundle's `created` */
  resolved: z.string(),
  /** ISO 8601, UTC */
  expires: z.string(),
  platforms: z.array(z.string()).min(1),
  health: z.array(HealthCheck),
  artifacts: z.array(LockedArtifact),
})
export type LockFile = z.infer<typeof LockFile>
