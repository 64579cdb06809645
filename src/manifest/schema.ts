import semver from 'semver'
import {z} from 'zod'
import {DURATION_HINT, tryParseDuration} from './duration.js'

/**
 * The manifest a release engineer writes (DESIGN.md, "Manifest"). Every object is
 * strict, so a misspelt field is refused instead of silently ignored.
 */

/** A plain semantic version as bundles carry it: 2026.11.0, 1.4.2-rc.1 (no leading "v"). */
export function isPlainSemver(text: string): boolean {
  return /^\d/.test(text) && semver.parse(text) !== null
}

/** An upstream release tag: "v" and a semantic version (v1.30.4, v1.30.4+k3s1). */
export function isReleaseTag(text: string): boolean {
  return text.startsWith('v') && isPlainSemver(text.slice(1))
}

const HttpUrl = z.url({protocol: /^https?$/, error: 'not an http(s) URL'})

const Duration = z.string().refine((v) => tryParseDuration(v) !== undefined, {error: `not ${DURATION_HINT}`})

const Sha256 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'not a sha256 (64 hex digits)')
  .transform((v) => v.toLowerCase())

/** A path inside the slot: relative, no "..", no empty parts. */
const SlotPath = z
  .string()
  .refine((p) => p.length > 0 && !p.startsWith('/') && !p.includes('\\') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), {
    error: 'not a relative path inside the slot (no leading "/", no "..", no empty parts)',
  })

const Name = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lowercase letters, digits, ".", "_" and "-", starting with a letter or digit').max(100)

const Platform = z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'not a platform: write os/arch, e.g. linux/amd64')

const K3sArch = z.enum(['amd64', 'arm64', 'arm'])
const KubernetesArch = z.enum(['amd64', 'arm64', 'arm', 'ppc64le', 's390x'])

export const Metadata = z.strictObject({
  name: Name,
  version: z.string().refine((v) => v === 'auto' || isPlainSemver(v), {
    error: 'not a semantic version (e.g. 2026.11.0) or "auto"',
  }),
})

export const VmSignature = z.strictObject({
  /** detached OpenPGP signature over the checksum file's exact bytes */
  url: HttpUrl,
  /** public key file, relative to the manifest's folder */
  key: z.string().min(1),
})

export const DeltaMode = z.enum(['chunks', 'whole'])

/** Notary Project signatures a VM image published as an OCI artifact must carry */
export const VmNotation = z.strictObject({
  /** root CA certificate (PEM), relative to the manifest's folder: the signatures' chain must end there */
  ca: z.string().min(1),
})

/** `registry/repository:tag` or `…@sha256:…` (no transport prefix) */
const OciArtifactRef = z.string().regex(/^[^\s:/]+(?::\d+)?\/[^\s]+$/, 'not REGISTRY/REPOSITORY:TAG (e.g. mcr.microsoft.com/azurelinux/3.0/image/minimal-os:3.0.20250101)')

export const VmImage = z
  .strictObject({
    name: Name,
    url: HttpUrl.optional(),
    /** a VM image published as an OCI artifact (oras): its reference; instead of `url` */
    oci: OciArtifactRef.optional(),
    /** oci: the platform to take from a multi-platform index (default: the bundle's first) */
    platform: Platform.optional(),
    /** oci: the layer to take, by its org.opencontainers.image.title (default: the one disk layer) */
    file: z.string().min(1).optional(),
    /** oci: the Notary Project signature must chain to this root */
    notation: VmNotation.optional(),
    /** URL of an upstream checksum file listing this image */
    checksums: HttpUrl.optional(),
    sha256: Sha256.optional(),
    signature: VmSignature.optional(),
    /** how a delta carries a changed image: `chunks` (default: only the chunks the base lacks) or `whole` */
    delta: DeltaMode.optional(),
  })
  .superRefine((vm, ctx) => {
    if ((vm.url === undefined) === (vm.oci === undefined)) {
      ctx.addIssue({code: 'custom', path: ['url'], message: 'give exactly one of "url" (a file) or "oci" (an OCI artifact)'})
      return
    }
    if (vm.oci !== undefined) {
      for (const field of ['checksums', 'sha256', 'signature'] as const) {
        if (vm[field] !== undefined) ctx.addIssue({code: 'custom', path: [field], message: `"${field}" is for "url" images; an "oci" image is checked by its registry digests (and "notation")`})
      }
      return
    }
    for (const field of ['platform', 'file', 'notation'] as const) {
      if (vm[field] !== undefined) ctx.addIssue({code: 'custom', path: [field], message: `"${field}" is for "oci" images`})
    }
    if ((vm.checksums === undefined) === (vm.sha256 === undefined)) {
      ctx.addIssue({code: 'custom', path: ['checksums'], message: 'give exactly one of "checksums" (URL) or "sha256"'})
    }
    if (vm.signature && !vm.checksums) {
      ctx.addIssue({code: 'custom', path: ['signature'], message: '"signature" signs a checksum file: it needs "checksums"'})
    }
  })

export const K3sSpec = z
  .strictObject({
    version: z.string().refine(isReleaseTag, {error: 'not a k3s release (e.g. v1.30.4+k3s1)'}).optional(),
    /** a release channel (stable, latest, v1.30) resolved through `channelUrl` */
    channel: z.string().regex(/^[A-Za-z0-9._-]+$/, 'not a channel name (e.g. stable)').optional(),
    /** the channel server: `<channelUrl>/<channel>` redirects to the release */
    channelUrl: HttpUrl.default('https://update.k3s.io/v1-release/channels'),
    arches: z.array(K3sArch).min(1).optional(),
    airgapImages: z.boolean().default(true),
    base: HttpUrl.default('https://github.com/k3s-io/k3s/releases/download'),
  })
  .superRefine((k, ctx) => {
    if ((k.version === undefined) === (k.channel === undefined)) {
      ctx.addIssue({code: 'custom', path: ['version'], message: 'give exactly one of "version" or "channel"'})
    }
  })

export const KubernetesSpec = z.strictObject({
  version: z.string().refine(isReleaseTag, {error: 'not a Kubernetes release (e.g. v1.30.4)'}),
  binaries: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'not a binary name (e.g. kubectl)'))
    .min(1)
    .default(['kubelet', 'kubectl', 'kubeadm']),
  arches: z.array(KubernetesArch).min(1).optional(),
  base: HttpUrl.default('https://dl.k8s.io'),
})

export const FileSpec = z.strictObject({
  url: HttpUrl,
  sha256: Sha256,
  /** where the device puts it, relative to the slot; default files/<basename> */
  dest: SlotPath.optional(),
  /** artifact name; default the URL's basename */
  name: Name.optional(),
  /** how a delta carries a changed file: `whole` (default) or `chunks` (only the chunks the base lacks; for big files) */
  delta: DeltaMode.optional(),
})

/** cosign public keys (PKIX PEM files, relative to the manifest's folder): any one of them suffices */
const CosignKeys = z
  .strictObject({key: z.string().min(1).optional(), keys: z.array(z.string().min(1)).min(1).optional()})
  .refine((c) => (c.key === undefined) !== (c.keys === undefined), {error: 'give exactly one of "key" (a file) or "keys" (a list of files)'})

/** An image that must carry a cosign signature by one of the keys */
export const ImageEntry = z.union([
  z.string().min(1),
  z.strictObject({
    ref: z.string().min(1),
    cosign: CosignKeys.optional(),
  }),
])

/** A key for every image whose `registry/repository` matches the glob (`*` within a path part, `**` across parts) */
export const CosignRule = z.strictObject({
  match: z.string().min(1),
  key: z.string().min(1).optional(),
  keys: z.array(z.string().min(1)).min(1).optional(),
}).refine((c) => (c.key === undefined) !== (c.keys === undefined), {error: 'give exactly one of "key" (a file) or "keys" (a list of files)'})

export const HealthSpec = z
  .strictObject({
    name: Name,
    run: z.string().min(1).optional(),
    http: HttpUrl.optional(),
    timeout: Duration.default('60s'),
    retries: z.number().int().nonnegative().optional(),
    interval: Duration.optional(),
  })
  .superRefine((h, ctx) => {
    if ((h.run === undefined) === (h.http === undefined)) {
      ctx.addIssue({code: 'custom', path: ['run'], message: 'give exactly one of "run" (command) or "http" (URL)'})
    }
  })

export const Spec = z.strictObject({
  platforms: z
    .array(Platform)
    .min(1)
    .refine((p) => new Set(p).size === p.length, {error: 'a platform is listed twice'})
    .default(['linux/amd64']),
  expiresIn: Duration.default('90d'),
  vm: z.array(VmImage).default([]),
  k3s: K3sSpec.optional(),
  kubernetes: KubernetesSpec.optional(),
  /** image references, or {ref, cosign: {key | keys}} for an image that must be signed */
  images: z.array(ImageEntry).default([]),
  /** cosign keys for many images at once, by repository glob */
  cosign: z.array(CosignRule).default([]),
  files: z.array(FileSpec).default([]),
  health: z.array(HealthSpec).default([]),
})

export const Manifest = z.strictObject({
  apiVersion: z.literal('ferry/v1', {error: 'must be ferry/v1'}),
  kind: z.literal('Bundle', {error: 'must be Bundle'}),
  metadata: Metadata,
  spec: Spec,
})

export type Manifest = z.infer<typeof Manifest>
export type VmImage = z.infer<typeof VmImage>
export type K3sSpec = z.infer<typeof K3sSpec>
export type KubernetesSpec = z.infer<typeof KubernetesSpec>
export type FileSpec = z.infer<typeof FileSpec>
export type HealthSpec = z.infer<typeof HealthSpec>
export type ImageEntry = z.infer<typeof ImageEntry>
export type CosignRule = z.infer<typeof CosignRule>
