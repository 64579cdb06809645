// Finding the cosign signatures of an image in its repository: the `sha256-<hex>.sig` tag that
// cosign 1.x/2.x writes, and the OCI 1.1 referrers (API, else the `sha256-<hex>` tag index) that
// cosign 3.x writes as sigstore bundles. Every document and blob is checked against its digest.
import {FerryError} from '../../errors.js'
import {SIGSTORE_BUNDLE, SIMPLE_SIGNING} from '../../trust/cosign.js'
import {MAX_DOCUMENT, type Descriptor} from './document.js'
import {MEDIA} from './media-types.js'
import {readCapped} from './registry-document.js'
import type {RegistryReference} from './reference.js'
import type {RegistryPool} from './registry-source.js'
import type {FetchedDocument, ImageSource} from './source-types.js'

/** cosign 1.x/2.x: one manifest under the `.sig` tag; 3.x: a referrer holding a sigstore bundle. */
export type SignatureForm = 'simplesigning' | 'sigstore-bundle'

/** A signature manifest as found, with the small blobs it names (payloads, bundles, its config). */
export interface FoundSignature {
  form: SignatureForm
  /** the signature manifest */
  manifest: FetchedDocument
  /** its layers (those of the form's media type hold the signatures) */
  layers: Array<{desc: Descriptor; bytes: Buffer}>
  /** its config */
  config: {desc: Descriptor; bytes: Buffer}
  /** the tag it was found under (`sha256-<hex>.sig`, `sha256-<hex>`), or `referrers` for the API */
  via: string
}

/** The tag cosign 1.x/2.x signs under, and the OCI 1.1 referrers fallback tag. */
export const sigTag = (digest: string) => `${digest.replace(':', '-')}.sig`
export const referrersTag = (digest: string) => digest.replace(':', '-')

const MAX_SIGNATURE_BLOB = 1 << 20

const isNotFound = (err: unknown) => err instanceof FerryError && err.code === 'NOT_FOUND'

/** Opens the repository of `ref` at another reference (a tag or digest). */
function at(pool: RegistryPool, ref: RegistryReference, reference: {tag?: string; digest?: string}): ImageSource {
  return pool.source({...ref, tag: reference.tag, digest: reference.digest})
}

export async function readManifest(source: ImageSource, desc?: Descriptor): Promise<FetchedDocument | undefined> {
  try {
    return desc ? await source.document(desc) : await source.root()
  } catch (err) {
    if (isNotFound(err)) return undefined
    throw err
  }
}

export interface ManifestJson {
  mediaType?: string
  artifactType?: string
  config?: Descriptor
  layers?: Descriptor[]
  manifests?: Array<Descriptor & {artifactType?: string}>
  subject?: Descriptor
}

export function json(doc: {bytes: Buffer}): ManifestJson {
  try {
    const value = JSON.parse(doc.bytes.toString('utf8'))
    return value && typeof value === 'object' ? value : {}
  } catch {
    return {}
  }
}

const isDescriptor = (d: unknown): d is Descriptor =>
  !!d && typeof (d as Descriptor).digest === 'string' && /^sha256:[0-9a-f]{64}$/.test((d as Descriptor).digest) && Number.isSafeInteger((d as Descriptor).size)

/**
 * The config and layers of a signature manifest, read whole (each at most 1 MiB: signatures are
 * small); undefined when it is no manifest or holds no layer of the `wanted` type.
 */
export async function signatureBlobs(doc: ManifestJson, wanted: string, read: (desc: Descriptor) => Promise<Buffer>): Promise<Pick<FoundSignature, 'layers' | 'config'> | undefined> {
  if (!isDescriptor(doc.config) || !Array.isArray(doc.layers) || !doc.layers.every(isDescriptor)) return undefined
  if (!doc.layers.some((l) => l.mediaType === wanted)) return undefined
  if ([doc.config, ...doc.layers].some((d) => d.size > MAX_SIGNATURE_BLOB)) return undefined
  const layers = []
  for (const desc of doc.layers) layers.push({desc, bytes: await read(desc)})
  return {layers, config: {desc: doc.config, bytes: await read(doc.config)}}
}

const blobsOf = (source: ImageSource, doc: ManifestJson, wanted: string) => signatureBlobs(doc, wanted, (d) => source.config(d))

/** The descriptors of the image's referrers: the referrers API where the registry has it, else the fallback tag's index. */
export async function referrers(pool: RegistryPool, ref: RegistryReference, digest: string): Promise<{list: Array<Descriptor & {artifactType?: string}>; via: string}> {
  const client = pool.client(ref.registry)
  const path = `/v2/${ref.repository}/referrers/${digest}`
  const res = await client.request(ref.repository, path, {headers: {Accept: MEDIA.ociIndex}})
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim()
  if (res.ok && type === MEDIA.ociIndex) {
    const bytes = await readCapped(res.body, MAX_DOCUMENT, `${ref.registry}/${ref.repository} referrers of ${digest}: larger than ${MAX_DOCUMENT} bytes`)
    const index = json({bytes})
    return {list: Array.isArray(index.manifests) ? index.manifests.filter(isDescriptor) : [], via: 'referrers'}
  }
  res.close()
  // No referrers API (404, or a registry that answers something else): the tag schema of OCI 1.1.
  const tagged = await readManifest(at(pool, ref, {tag: referrersTag(digest)}))
  const index = tagged ? json(tagged) : {}
  return {list: Array.isArray(index.manifests) ? index.manifests.filter(isDescriptor) : [], via: referrersTag(digest)}
}

/**
 * Every cosign signature of the image `digest` in `ref`'s repository, in both forms. None found
 * is an empty list; a registry that fails is exit 5 as for any fetch.
 */
export async function findCosignSignatures(pool: RegistryPool, ref: RegistryReference, digest: string): Promise<FoundSignature[]> {
  const found: FoundSignature[] = []
  const tagSource = at(pool, ref, {tag: sigTag(digest)})
  const tagged = await readManifest(tagSource)
  if (tagged) {
    const blobs = await blobsOf(tagSource, json(tagged), SIMPLE_SIGNING)
    if (blobs) found.push({form: 'simplesigning', manifest: tagged, ...blobs, via: sigTag(digest)})
  }
  const {list, via} = await referrers(pool, ref, digest)
  for (const desc of list.filter((d) => d.artifactType === SIGSTORE_BUNDLE)) {
    const source = at(pool, ref, {digest: desc.digest})
    const doc = await readManifest(source, {...desc, mediaType: desc.mediaType || MEDIA.ociManifest})
    if (!doc) continue
    const body = json(doc)
    // A referrer names its image: one that names another is not this image's signature.
    if (body.subject?.digest !== digest) continue
    const blobs = await blobsOf(source, body, SIGSTORE_BUNDLE)
    if (blobs) found.push({form: 'sigstore-bundle', manifest: doc, ...blobs, via})
  }
  return found
}

/** A signature manifest named in a lock, fetched again by its digest with its blobs (the build checks it once more). */
export async function fetchCosignSignature(pool: RegistryPool, ref: RegistryReference, form: SignatureForm, desc: Descriptor, via: string): Promise<FoundSignature | undefined> {
  const source = at(pool, ref, {digest: desc.digest})
  const doc = await readManifest(source, desc)
  if (!doc) return undefined
  const blobs = await blobsOf(source, json(doc), form === 'simplesigning' ? SIMPLE_SIGNING : SIGSTORE_BUNDLE)
  return blobs && {form, manifest: doc, ...blobs, via}
}
