// SBOMs an image's registry holds for it: OCI 1.1 referrers (the referrers API, else the
// `sha256-<hex>` tag index) whose artifact type is a CycloneDX or SPDX JSON document, as
// `oras attach` writes them, and cosign attestations of those predicates (`cosign attest`, the
// `sha256-<hex>.att` tag). Found at lock (pinned by digest), brought into the store at build, and
// carried in the bundle beside the image.
import type {BlobStore} from '../../store/blob-store.js'
import {MAX_CONFIG, type Descriptor} from './document.js'
import {json, readManifest, referrers} from './cosign-find.js'
import {MEDIA} from './media-types.js'
import type {RegistryReference} from './reference.js'
import type {RegistryPool} from './registry-source.js'

export const SBOM_TYPES = ['application/vnd.cyclonedx+json', 'application/spdx+json']
/** cosign attestations (`cosign attest --type cyclonedx|spdxjson`): DSSE envelopes under `sha256-<hex>.att` */
export const DSSE_ENVELOPE = 'application/vnd.dsse.envelope.v1+json'
const SBOM_PREDICATES = ['https://cyclonedx.org/bom', 'https://spdx.dev/Document']
export const attTag = (digest: string) => `${digest.replace(':', '-')}.att`
/** an SBOM larger than this is left where it is */
const MAX_SBOM = 64 << 20

export interface FoundSbom {
  /** the referrer's artifact type, or DSSE_ENVELOPE for a cosign attestation */
  artifactType: string
  /** a cosign attestation: the in-toto predicate type its layer announces */
  predicateType?: string
  /** the referrer manifest */
  manifest: {mediaType: string; digest: string; size: number}
  /** its layer holding the document */
  document: {mediaType: string; digest: string; size: number}
  /** `referrers` (the API) or the fallback tag it was listed under */
  via: string
  /** a cosign attestation signed by the image's cosign key: that key's fingerprint */
  key?: string
}

const base = (t: string | undefined) => (t ?? '').split(';')[0].trim()
const strip = (d: Descriptor) => ({mediaType: d.mediaType, digest: d.digest, size: d.size})

const isBlob = (l: Descriptor) => /^sha256:[0-9a-f]{64}$/.test(l.digest) && Number.isSafeInteger(l.size) && l.size <= MAX_SBOM

/** cosign's `.att` tag: each DSSE layer whose predicate is a CycloneDX or SPDX document. */
async function attestations(pool: RegistryPool, ref: RegistryReference, digest: string): Promise<FoundSbom[]> {
  const doc = await readManifest(pool.source({...ref, tag: attTag(digest), digest: undefined}))
  const layers = doc ? json(doc).layers : undefined
  if (!doc || !Array.isArray(layers)) return []
  const manifest = {mediaType: doc.mediaType || MEDIA.ociManifest, digest: doc.digest, size: doc.bytes.length}
  return layers
    .filter((l) => base(l.mediaType) === DSSE_ENVELOPE && isBlob(l) && SBOM_PREDICATES.some((p) => (l.annotations?.predicateType ?? '').startsWith(p)))
    .map((l) => ({artifactType: DSSE_ENVELOPE, predicateType: l.annotations!.predicateType, manifest, document: strip(l), via: attTag(digest)}))
}

/**
 * The image `digest`'s SBOMs in `ref`'s repository: OCI referrers (by manifest digest), then
 * cosign attestations (in their manifest's order). None is an empty list.
 */
export async function findSbomReferrers(pool: RegistryPool, ref: RegistryReference, digest: string): Promise<FoundSbom[]> {
  const {list, via} = await referrers(pool, ref, digest)
  const found: FoundSbom[] = []
  for (const desc of list) {
    if (!SBOM_TYPES.includes(base(desc.artifactType))) continue
    const doc = await readManifest(pool.source({...ref, tag: undefined, digest: desc.digest}), {...desc, mediaType: desc.mediaType || MEDIA.ociManifest})
    if (!doc) continue
    const body = json(doc)
    if (body.subject?.digest !== digest || !Array.isArray(body.layers)) continue
    const layer = body.layers.find((l) => SBOM_TYPES.includes(base(l.mediaType)) && isBlob(l))
    if (!layer) continue
    found.push({artifactType: base(desc.artifactType), manifest: {mediaType: doc.mediaType || MEDIA.ociManifest, digest: doc.digest, size: doc.bytes.length}, document: strip(layer), via})
  }
  // one document attached twice is carried once (the first referrer, by manifest digest)
  found.sort((x, y) => (x.manifest.digest < y.manifest.digest ? -1 : x.manifest.digest > y.manifest.digest ? 1 : 0))
  found.push(...(await attestations(pool, ref, digest)))
  return found.filter((f, i) => found.findIndex((g) => g.document.digest === f.document.digest) === i)
}

/** Brings an SBOM document a lock names into the store (checked against its digest) unless it is there. */
export async function fetchSbomDocument(pool: RegistryPool, ref: RegistryReference, sbom: FoundSbom, store: BlobStore): Promise<void> {
  if (await store.has(sbom.document.digest)) return
  await pool.source({...ref, tag: undefined, digest: sbom.manifest.digest}).fetchBlob(store, sbom.document)
}

/** A cosign attestation's envelope, read whole when small enough to check (at most 4 MiB); undefined otherwise. */
export async function readAttestation(pool: RegistryPool, ref: RegistryReference, sbom: FoundSbom): Promise<Buffer | undefined> {
  if (!sbom.predicateType || sbom.document.size > MAX_CONFIG) return undefined
  return pool.source({...ref, tag: undefined, digest: sbom.manifest.digest}).config(sbom.document)
}
