// What a reader checks of a VM image that came from an OCI registry: the artifact manifest the
// bundle carries names the VM blob (digest and size) as one of its layers, and every notation
// signature manifest is a referrer of that manifest or of its index.
import {integrityError} from '../errors.js'
import type {BundleArtifact, BundleManifest} from './format.js'

/** The documents carried beside an OCI VM artifact (manifest, config, index), with their sizes. */
export function vmDocuments(a: BundleArtifact): Array<{digest: string; size: number}> {
  if (!a.oci) return []
  return [a.oci.manifest, a.oci.config, ...(a.oci.index ? [a.oci.index] : [])]
}

function parse(bytes: Buffer, what: string): {layers?: Array<{digest?: unknown; size?: unknown}>; subject?: {digest?: unknown}} {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    throw integrityError('BAD_OCI_JSON', `${what} is not valid JSON`)
  }
}

/** Refuses (exit 3) a VM artifact whose manifest does not name its blob, or a notation signature that is another artifact's. */
export function checkVmManifests(manifest: BundleManifest, content: (digest: string) => Buffer | undefined): void {
  for (const a of manifest.artifacts) {
    if (!a.oci) continue
    const bytes = content(a.oci.manifest.digest)
    if (bytes) {
      const layers = parse(bytes, `${a.name} manifest ${a.oci.manifest.digest}`).layers ?? []
      if (!layers.some((l) => l.digest === a.digest && l.size === a.size)) {
        throw integrityError('VM_LAYER_MISMATCH', `${a.name}: its artifact manifest ${a.oci.manifest.digest} does not name ${a.digest} (${a.size} bytes) as a layer`)
      }
    }
    const subjects = new Set([a.oci.manifest.digest, ...(a.oci.index ? [a.oci.index.digest] : [])])
    for (const s of a.notation?.signatures ?? []) {
      const sig = content(s.manifest.digest)
      if (!sig) continue
      const subject = parse(sig, `${a.name} signature ${s.manifest.digest}`).subject?.digest
      if (typeof subject !== 'string' || !subjects.has(subject) || subject !== s.subject) {
        throw integrityError('VM_SIGNATURE_MISMATCH', `${a.name}: the notation signature ${s.manifest.digest} is a referrer of ${String(subject)}, not of this artifact`)
      }
    }
  }
}
