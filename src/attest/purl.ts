// Package URLs (purl, ECMA-427) for what a bundle carries: `pkg:oci/…` for container images,
// `pkg:generic/…` for downloaded files. Canonical form: qualifiers sorted by key, values
// percent-encoded except ':' and '/', as the spec's own examples write them.

const encodePart = (text: string) => encodeURIComponent(text)
const encodeValue = (text: string) => encodeURIComponent(text).replace(/%3A/gi, ':').replace(/%2F/gi, '/')

function qualifiers(values: Record<string, string | undefined>): string {
  const pairs = Object.entries(values)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${encodeValue(v)}`)
  return pairs.length ? `?${pairs.join('&')}` : ''
}

/**
 * An OCI image: `pkg:oci/<last path part>@sha256%3A<hex>?arch=…&repository_url=<registry/repo>&tag=…`.
 * The name is the repository's last part, lowercased; the version is the manifest (or index) digest.
 */
export function ociPurl(repository: string, digest: string, extra: {tag?: string; arch?: string} = {}): string {
  const name = repository.split('/').pop()!.toLowerCase()
  return `pkg:oci/${encodePart(name)}@${encodePart(digest)}${qualifiers({arch: extra.arch, repository_url: repository, tag: extra.tag})}`
}

/** A downloaded file: `pkg:generic/<name>@<version>?checksum=sha256:<hex>&download_url=<url>`. */
export function genericPurl(name: string, version: string | undefined, sha256: string, url: string): string {
  return `pkg:generic/${encodePart(name)}${version ? `@${encodePart(version)}` : ''}${qualifiers({checksum: `sha256:${sha256}`, download_url: url})}`
}

/** `registry/repository` and tag of a full image reference (`host:5000/app/api:1.4.2`, with or without `@digest`). */
export function splitImageRef(ref: string): {repository: string; tag?: string} {
  const withoutDigest = ref.split('@')[0]
  const slash = withoutDigest.lastIndexOf('/')
  const colon = withoutDigest.lastIndexOf(':')
  if (colon > slash) return {repository: withoutDigest.slice(0, colon), tag: withoutDigest.slice(colon + 1)}
  return {repository: withoutDigest}
}

/**
 * A source that is a blob in a registry (`registry/repository@sha256:<hex>`, as an image's SBOM
 * referrer is named) rather than a URL: its repository and digest.
 */
export function registryBlobSource(source: string): {repository: string; digest: string} | undefined {
  const m = /^([^@\s]+)@(sha256:[0-9a-f]{64})$/.exec(source)
  if (!m || /^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return undefined
  return {repository: splitImageRef(m[1]).repository, digest: m[2]}
}
