import {isAbsolute, resolve} from 'node:path'
import {usageError} from '../../errors.js'

/** An image in a registry: `registry/repository[:tag][@digest]`, Docker Hub short names expanded. */
export interface RegistryReference {
  transport: 'registry'
  /** host[:port] as written, `docker.io` for Docker Hub */
  registry: string
  repository: string
  tag?: string
  digest?: string
}

/** An image in a local OCI layout folder (`oci:DIR:REF`) or a tar of one (`oci-archive:FILE:REF`). */
export interface LayoutReference {
  transport: 'oci' | 'oci-archive'
  /** absolute path of the folder or archive */
  path: string
  /** the name in the layout's index.json (`org.opencontainers.image.ref.name`); empty: the only image */
  ref: string
}

export type ImageReference = RegistryReference | LayoutReference

export const DOCKER_HUB = 'docker.io'

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`)
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/

function bad(text: string, why: string): never {
  throw usageError('BAD_IMAGE_REF', `image "${text}": ${why}`)
}

/**
 * Parses a registry reference the way docker does: the first part is a registry when it has a
 * "." or ":" or is "localhost"; otherwise the image is on Docker Hub, and a one-part name is
 * under `library/` (`nginx:1.27` → `docker.io/library/nginx:1.27`). No tag and no digest means `latest`.
 */
export function parseRegistryReference(text: string): RegistryReference {
  const scheme = /^(https?):\/\/([^/]+)\/(.+)$/.exec(text)
  if (scheme) {
    const plain = scheme[1] === 'http' ? ` (a registry served over plain http also needs --insecure-registry ${scheme[2]})` : ''
    bad(text, `an image is named without a URL scheme: write ${scheme[2]}/${scheme[3]}${plain}`)
  }
  let rest = text.startsWith('docker://') ? text.slice('docker://'.length) : text
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST_RE.test(digest)) bad(text, `"${digest}" is not a digest (sha256:<64 lowercase hex>)`)
  }
  let tag: string | undefined
  const lastSlash = rest.lastIndexOf('/')
  const colon = rest.indexOf(':', lastSlash + 1)
  if (colon >= 0) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG_RE.test(tag)) bad(text, `"${tag}" is not a tag`)
  }
  const slash = rest.indexOf('/')
  const first = slash < 0 ? '' : rest.slice(0, slash)
  let registry = DOCKER_HUB
  let repository = rest
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first
    repository = rest.slice(slash + 1)
    if (!HOST_RE.test(registry)) bad(text, `"${registry}" is not a registry host[:port]`)
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`
  if (!REPOSITORY_RE.test(repository)) bad(text, `"${repository}" is not a repository name (lowercase letters, digits, separators)`)
  if (tag === undefined && digest === undefined) tag = 'latest'
  return {transport: 'registry', registry, repository, tag, digest}
}

/** Parses a manifest's `images:` entry; relative layout paths start at `baseDir` (the manifest's folder). */
export function parseImageReference(text: string, baseDir = process.cwd()): ImageReference {
  for (const transport of ['oci-archive', 'oci'] as const) {
    if (!text.startsWith(`${transport}:`)) continue
    // skopeo's syntax: the path ends at the first ":", the name in the layout follows.
    const body = text.slice(transport.length + 1)
    const sep = body.indexOf(':')
    const path = sep < 0 ? body : body.slice(0, sep)
    const ref = sep < 0 ? '' : body.slice(sep + 1)
    if (!path) bad(text, `no ${transport === 'oci' ? 'folder' : 'file'} given (write ${transport}:PATH:NAME)`)
    return {transport, path: isAbsolute(path) ? path : resolve(baseDir, path), ref}
  }
  return parseRegistryReference(text)
}

/** `registry/repository:tag@digest` with whichever of tag and digest are set. */
export function formatReference(r: RegistryReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`
}

/** The source as written back into a lock: skopeo's transport syntax for layouts, the full name for registries. */
export function formatSource(r: ImageReference): string {
  return r.transport === 'registry' ? formatReference(r) : `${r.transport}:${r.path}:${r.ref}`
}

/**
 * The name an image carries in a bundle: the full reference without the digest for registry
 * images; for a layout image its name there, expanded like a registry name when it is one.
 */
export function bundleImageName(r: ImageReference): string {
  if (r.transport === 'registry') return formatReference({...r, digest: r.tag ? undefined : r.digest})
  try {
    return formatReference({...parseRegistryReference(r.ref || 'latest'), digest: undefined})
  } catch {
    return r.ref
  }
}
