// The cosign signatures a lock names, checked again when a bundle is built: read from the store
// when an earlier build kept them (no registry needed), else fetched by the digest the lock pins.
import {Readable} from 'node:stream'
import {trustError} from '../errors.js'
import type {LockedArtifact} from '../manifest/lock-format.js'
import {verifyCosign} from '../sources/oci/cosign-check.js'
import {fetchCosignSignature, json, signatureBlobs, type FoundSignature} from '../sources/oci/cosign-find.js'
import type {Descriptor} from '../sources/oci/document.js'
import {parseRegistryReference} from '../sources/oci/reference.js'
import type {RegistryPool} from '../sources/oci/registry-source.js'
import type {BlobStore} from '../store/blob-store.js'
import type {BlobFile} from './write.js'
import {SIGSTORE_BUNDLE, SIMPLE_SIGNING, parseCosignKey} from '../trust/cosign.js'

/** An image's signature as the bundle carries it. */
export interface CarriedSignature {
  image: LockedArtifact
  signature: FoundSignature
}

async function fromStore(store: BlobStore, a: LockedArtifact): Promise<FoundSignature | undefined> {
  const proof = a.cosign!
  const bytes = await store.readSmall(proof.manifest.digest, proof.manifest.size)
  if (!bytes) return undefined
  const missing = new Error('missing')
  const read = async (d: Descriptor) => {
    const got = await store.readSmall(d.digest, d.size)
    if (!got) throw missing
    return got
  }
  const blobs = await signatureBlobs(json({bytes}), proof.form === 'simplesigning' ? SIMPLE_SIGNING : SIGSTORE_BUNDLE, read).catch((err) => {
    if (err === missing) return undefined
    throw err
  })
  return blobs && {form: proof.form, manifest: {bytes, digest: proof.manifest.digest, mediaType: proof.manifest.mediaType}, ...blobs, via: proof.via}
}

async function keep(store: BlobStore, digest: string, bytes: Buffer, what: string): Promise<void> {
  if (!(await store.has(digest))) await store.ingest(Readable.from([bytes]), {digest, size: bytes.length, what})
}

/**
 * Every signed image of the lock: its signature manifest and blobs (from the store, else the
 * registry), checked with the key the lock recorded, and kept in the store. A signature that no
 * longer verifies, or that the registry no longer has, is exit 4 naming the image and the key.
 */
export async function checkLockedSignatures(images: LockedArtifact[], store: BlobStore, pool: RegistryPool): Promise<CarriedSignature[]> {
  const out: CarriedSignature[] = []
  for (const a of images) {
    const proof = a.cosign
    if (!proof) continue
    const digest = `sha256:${a.sha256}`
    const key = parseCosignKey(proof.publicKey, proof.keyFile)
    let signature = await fromStore(store, a)
    if (!signature) {
      signature = await fetchCosignSignature(pool, parseRegistryReference(a.url), proof.form, proof.manifest, proof.via)
      if (!signature) {
        throw trustError('IMAGE_UNSIGNED', `${a.ref ?? a.name}@${digest}: cosign key ${proof.keyFile} (${proof.key.slice(0, 19)}): the signature manifest ${proof.manifest.digest} the lock names is gone from the registry; lock again`)
      }
    }
    verifyCosign(a.ref ?? a.name, digest, [key], [signature])
    const what = `${a.ref ?? a.name} signature`
    await keep(store, signature.manifest.digest, signature.manifest.bytes, what)
    for (const blob of [signature.config, ...signature.layers]) await keep(store, blob.desc.digest, blob.bytes, what)
    out.push({image: a, signature})
  }
  return out
}

/** The blobs that carry the signatures (manifests, configs, layers), each once, from the store. */
export function signatureBlobFiles(signatures: CarriedSignature[], store: BlobStore): BlobFile[] {
  const out = new Map<string, BlobFile>()
  for (const {signature} of signatures) {
    const m = signature.manifest
    for (const [digest, size] of [[m.digest, m.bytes.length] as const, ...[signature.config, ...signature.layers].map((b) => [b.desc.digest, b.desc.size] as const)]) {
      out.set(digest, {digest, size, path: store.pathOf(digest)})
    }
  }
  return [...out.values()]
}
