import {integrityError} from '../errors.js'

/** An OCI content descriptor, the fields Ferry checks. */
export interface Descriptor {
  mediaType?: string
  digest: string
  size: number
  platform?: {os?: string; architecture?: string; variant?: string}
  annotations?: Record<string, string>
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'])

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(bytes.toString('utf8'))
    if (value && typeof value === 'object') return value as Record<string, unknown>
  } catch {
    // fall through to the error below
  }
  throw integrityError('BAD_OCI_JSON', `${what} is not valid JSON`)
}

function descriptors(value: unknown, what: string): Descriptor[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw integrityError('BAD_OCI_JSON', `${what} is not a list of descriptors`)
  return value.map((d, i) => {
    if (!d || typeof d.digest !== 'string' || typeof d.size !== 'number') {
      throw integrityError('BAD_OCI_JSON', `${what}[${i}] is not a descriptor`)
    }
    return d as Descriptor
  })
}

/**
 * Walks image indexes and manifests from `roots`, returning every blob they
 * reference (digest → size). `content` gives the bytes of a manifest or index;
 * a missing one is an error unless `absent` says it may be left out (deltas).
 * An index's children that are not in the bundle (a platform-filtered index)
 * are listed in `filtered` instead of being required.
 */
export function imageClosure(
  roots: Descriptor[],
  content: (digest: string) => Buffer | undefined,
  absent: (digest: string) => boolean = () => false,
  present: (digest: string) => boolean = () => true,
): Map<string, number> {
  const out = new Map<string, number>()
  const visit = (d: Descriptor, where: string, optional: boolean) => {
    const known = out.get(d.digest)
    if (known !== undefined) {
      if (known !== d.size) throw integrityError('SIZE_MISMATCH', `${where}: ${d.digest} is referenced with two sizes`)
      return
    }
    if (optional && !present(d.digest)) return
    out.set(d.digest, d.size)
    const isIndex = INDEX_TYPES.has(d.mediaType ?? '')
    const isManifest = !isIndex && /manifest/.test(d.mediaType ?? '')
    if (!isIndex && !isManifest) return
    const bytes = content(d.digest)
    if (!bytes) {
      if (absent(d.digest)) return
      throw integrityError('MISSING_BLOB', `${where}: ${d.digest} is missing from the bundle`)
    }
    const doc = parseJson(bytes, d.digest)
    if (isIndex) {
      for (const child of descriptors(doc.manifests, `${d.digest} manifests`)) visit(child, d.digest, true)
    } else {
      if (doc.config !== undefined) for (const c of descriptors([doc.config], `${d.digest} config`)) visit(c, d.digest, false)
      for (const layer of descriptors(doc.layers, `${d.digest} layers`)) visit(layer, d.digest, false)
    }
  }
  for (const root of roots) visit(root, 'index.json', false)
  return out
}

export function parseIndex(bytes: Buffer): Descriptor[] {
  const doc = parseJson(bytes, 'index.json')
  if (doc.schemaVersion !== 2) throw integrityError('BAD_OCI_JSON', 'index.json is not an OCI image index (schemaVersion 2)')
  return descriptors(doc.manifests, 'index.json manifests')
}
