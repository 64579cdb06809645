import {integrityError, upstreamError, usageError} from '../../errors.js'
import {isIndexType, isSchema1Type, MEDIA} from './media-types.js'

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
}

export type ImageDocument =
  | {kind: 'index'; mediaType: string; manifests: Descriptor[]}
  | {kind: 'manifest'; mediaType: string; config: Descriptor; layers: Descriptor[]}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/

function descriptor(value: unknown, what: string): Descriptor {
  const d = value as Partial<Descriptor> | null
  if (!d || typeof d.digest !== 'string' || !DIGEST_RE.test(d.digest) || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw integrityError('BAD_OCI_JSON', `${what} is not a sha256 content descriptor`)
  }
  return {...d, mediaType: typeof d.mediaType === 'string' ? d.mediaType : ''} as Descriptor
}

/**
 * Reads an image manifest or index. `headerType` is the Content-Type the registry sent (or the
 * descriptor's media type); the document's own `mediaType` wins when present. Schema 1 is refused.
 */
export function parseImageDocument(bytes: Buffer, headerType: string | undefined, what: string): ImageDocument {
  let doc: Record<string, unknown>
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw integrityError('BAD_OCI_JSON', `${what}: the manifest is not valid JSON`)
  }
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : (headerType ?? '').split(';')[0].trim()
  if (doc.schemaVersion === 1 || isSchema1Type(mediaType)) {
    throw upstreamError(
      'SCHEMA1_MANIFEST',
      `${what} is a Docker schema 1 manifest, which Ferry does not carry (deprecated, no stable digest); push the image again with a current docker, podman or skopeo to store it as schema 2 or OCI`,
    )
  }
  if (doc.schemaVersion !== 2) throw integrityError('BAD_OCI_JSON', `${what}: not an image manifest or index (schemaVersion ${String(doc.schemaVersion)})`)
  if (Array.isArray(doc.manifests) || isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw integrityError('BAD_OCI_JSON', `${what}: an index without "manifests"`)
    return {
      kind: 'index',
      mediaType: mediaType || MEDIA.ociIndex,
      manifests: doc.manifests.map((m, i) => descriptor(m, `${what} manifests[${i}]`)),
    }
  }
  if (!doc.config || !Array.isArray(doc.layers)) throw integrityError('BAD_OCI_JSON', `${what}: a manifest without "config" and "layers"`)
  return {
    kind: 'manifest',
    mediaType: mediaType || MEDIA.ociManifest,
    config: descriptor(doc.config, `${what} config`),
    layers: doc.layers.map((l, i) => descriptor(l, `${what} layers[${i}]`)),
  }
}

/** `os/arch[/variant]`. */
export function platformString(p: Platform | undefined): string {
  if (!p) return 'unknown'
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/')
}

/** The largest image config read into memory (a config is a few KiB; anything far larger is not one). */
export const MAX_CONFIG = 4 << 20
/** An image manifest or index larger than this is not one (registries cap them at 4 MiB too). */
export const MAX_DOCUMENT = 4 << 20

/** The platform an image config names (`os`, `architecture`, `variant`); undefined when it names none or is not JSON. */
export function configPlatform(bytes: Buffer): Platform | undefined {
  try {
    const c = JSON.parse(bytes.toString('utf8')) as {os?: unknown; architecture?: unknown; variant?: unknown}
    if (typeof c.os !== 'string' || typeof c.architecture !== 'string') return undefined
    return {os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' && c.variant ? {variant: c.variant} : {})}
  } catch {
    return undefined
  }
}

/**
 * An image that is a single manifest (no index) runs on one platform, named in its config: it
 * must be one the bundle is for, or a device would get an image it cannot run (exit 2 naming both).
 */
export function checkConfigPlatform(platform: Platform | undefined, platforms: string[], what: string): void {
  if (platform && !platforms.some((want) => matchesPlatform(want, platform))) {
    throw usageError('PLATFORM_NOT_FOUND', `${what} is a single-platform image for ${platformString(platform)}; the bundle is for ${platforms.join(', ')} (change spec.platforms or the image)`)
  }
}

/** `os/arch[/variant]` back into a platform. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant] = text.split('/')
  return {os, architecture, ...(variant ? {variant} : {})}
}

/** Whether an index child's platform is `want` (`linux/arm64` takes any arm64 variant; `linux/arm/v7` only v7). */
export function matchesPlatform(want: string, p: Platform | undefined): boolean {
  if (!p) return false
  const [os, arch, variant] = want.split('/')
  return p.os === os && p.architecture === arch && (variant === undefined || p.variant === variant)
}

/**
 * The children of an index for the bundle's platforms, in the index's order. A platform the index
 * does not offer is a usage error (exit 2) listing what it has.
 */
export function selectPlatforms(index: Extract<ImageDocument, {kind: 'index'}>, platforms: string[], what: string): Descriptor[] {
  const chosen = new Set<Descriptor>()
  for (const want of platforms) {
    const hit = index.manifests.find((m) => matchesPlatform(want, m.platform))
    if (!hit) {
      const offered = [...new Set(index.manifests.filter((m) => m.platform && m.platform.os !== 'unknown').map((m) => platformString(m.platform)))]
      throw usageError('PLATFORM_NOT_FOUND', `${what} has no image for ${want}; it offers ${offered.join(', ') || 'no platforms'} (change spec.platforms or the image)`)
    }
    chosen.add(hit)
  }
  return index.manifests.filter((m) => chosen.has(m))
}
