// Image signatures into the site registry, where cosign and admission controllers look for them:
// a cosign 1.x/2.x signature under the same `sha256-<hex>.sig` tag, a 3.x sigstore bundle as a
// referrer of the image (a manifest with `subject`, which a registry with the referrers API
// indexes itself) and listed in the `sha256-<hex>` tag index for registries without that API.
import {FerryError, integrityError} from '../errors.js'
import {referrersTag, sigTag} from '../sources/oci/cosign-find.js'
import {MEDIA} from '../sources/oci/media-types.js'
import type {RegistryClient} from '../sources/oci/registry-client.js'
import {putManifest} from '../sources/oci/registry-push.js'
import {getManifest} from '../sources/oci/registry-source.js'
import type {CosignProof} from '../manifest/lock-format.js'
import type {ManifestPut} from './push-types.js'

interface Descriptor {
  mediaType?: string
  digest: string
  size: number
  artifactType?: string
  annotations?: Record<string, string>
}

/** The blobs a signature manifest names and the documents that put it in place, for an image of digest `image`. */
export function signaturePuts(repo: string, image: string, proof: CosignProof, bytes: Buffer): {blobs: Descriptor[]; manifests: ManifestPut[]} {
  let doc: {config?: Descriptor; layers?: Descriptor[]; artifactType?: string; annotations?: Record<string, string>}
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw integrityError('BAD_OCI_JSON', `${proof.manifest.digest}: the signature manifest is not JSON`)
  }
  const blobs = [...(doc.config ? [doc.config] : []), ...(Array.isArray(doc.layers) ? doc.layers : [])]
  const m = proof.manifest
  const put = {repo, digest: m.digest, mediaType: m.mediaType, bytes}
  if (proof.form === 'simplesigning') return {blobs, manifests: [{...put, reference: sigTag(image)}]}
  const listed: Descriptor = {mediaType: m.mediaType, digest: m.digest, size: m.size, ...(doc.artifactType ? {artifactType: doc.artifactType} : {}), ...(doc.annotations ? {annotations: doc.annotations} : {})}
  return {blobs, manifests: [{...put, reference: m.digest}, {repo, reference: referrersTag(image), digest: '', mediaType: MEDIA.ociIndex, bytes: Buffer.alloc(0), referrer: listed}]}
}

/** Adds `referrer` to the repository's `sha256-<hex>` tag index (made when there is none), keeping the referrers it lists. */
export async function putReferrerTag(client: RegistryClient, m: ManifestPut & {referrer: Descriptor}): Promise<void> {
  let listed: Descriptor[] = []
  try {
    const got = await getManifest(client, m.repo, m.reference, `${client.registry}/${m.repo}:${m.reference}`)
    const index = JSON.parse(got.bytes.toString('utf8')) as {manifests?: Descriptor[]}
    listed = Array.isArray(index.manifests) ? index.manifests : []
  } catch (err) {
    if (!(err instanceof FerryError && err.code === 'NOT_FOUND') && !(err instanceof SyntaxError)) throw err
  }
  if (listed.some((d) => d.digest === m.referrer.digest)) return
  const bytes = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [...listed, m.referrer]}))
  await putManifest(client, m.repo, m.reference, bytes, MEDIA.ociIndex)
}
