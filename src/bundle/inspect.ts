import type {PublicKey} from 'openpgp'
import {integrityError} from '../errors.js'
import {artifactVersion} from '../manifest/artifact-changes.js'
import {ENTRY, parseBundleJson, type BundleManifest} from './format.js'
import type {BundleInput} from './input.js'
import type {ChunkReport} from './chunked.js'
import {readTar} from './tar-reader.js'

export interface Inspection {
  path: string
  size: number
  manifest: BundleManifest
  /** key ids or fingerprints named by the signature packets */
  signatureKeys: string[]
  /** set when trusted keys were given: the fingerprints whose signatures verified */
  verifiedBy?: string[]
  /** the container images, from bundle.json's `image` artifacts */
  images: ImageSummary[]
  /** VM images from OCI registries: the artifact and who signed it (notation) */
  vms: VmSummary[]
  /** per chunked artifact: its chunks, how many a delta takes from its base, and the bytes it carries */
  chunked: ChunkReport[]
}

export interface ImageSummary {
  ref: string
  /** its tag (absent for an image named by digest only) */
  version?: string
  /** of the image's manifest or index */
  digest: string
  /** platforms carried (an index's children kept, or the one a single manifest's config names) */
  platforms?: string[]
  /** bytes of all its blobs (shared layers counted in each image) */
  size: number
  /** the cosign key that verified it (sha256 of the DER public key) and its file; null: no signature required */
  signedBy: {key: string; keyFile: string; form: string} | null
}

export interface VmSummary {
  name: string
  /** registry/repository:tag@sha256:<artifact manifest> */
  ref: string
  platform?: string
  /** notation signatures carried */
  signatures: number
  /** the leaf certificate that signed it and the root it chains to; null: no root named, not checked */
  signedBy: {subject: string; fingerprint: string; root: string; rootFingerprint: string} | null
}

export function vmSummaries(manifest: BundleManifest): VmSummary[] {
  return manifest.artifacts
    .filter((a) => a.kind === 'vm' && a.oci)
    .map((a) => {
      const n = a.notation
      const v = n?.verified
      return {
        name: a.name,
        ref: `${a.oci!.ref}@${a.oci!.manifest.digest}`,
        ...(a.oci!.platform ? {platform: a.oci!.platform} : {}),
        signatures: n?.signatures.length ?? 0,
        signedBy: v && n?.ca ? {subject: v.subject, fingerprint: v.fingerprint, root: n.ca.subject, rootFingerprint: n.ca.fingerprint} : null,
      }
    })
}

/** What bundle.json says of each chunked artifact: rebuilt from a pack, omitted (the base has it), or carried whole. */
export function chunkSummaries(manifest: BundleManifest): ChunkReport[] {
  const omitted = new Set(manifest.omitted ?? [])
  return manifest.artifacts
    .filter((a) => a.chunks)
    .map((a): ChunkReport => {
      const count = a.chunks!.count
      if (a.delta) return {name: a.name, carried: 'chunks', chunks: count, reused: a.delta.reused, newBytes: a.delta.packSize}
      if (omitted.has(a.digest)) return {name: a.name, carried: 'omitted', chunks: count, reused: count, newBytes: 0}
      return {name: a.name, carried: 'whole', chunks: count, reused: 0, newBytes: a.size}
    })
}

function versionOf(a: BundleManifest['artifacts'][number]): {version?: string} {
  const version = artifactVersion(a)
  return version === undefined ? {} : {version}
}

export function imageSummaries(manifest: BundleManifest): ImageSummary[] {
  return manifest.artifacts
    .filter((a) => a.kind === 'image')
    .map((a) => ({ref: a.ref ?? a.name, ...versionOf(a), digest: a.digest, ...(a.platforms ? {platforms: a.platforms} : {}), size: a.imageSize ?? a.size, signedBy: a.cosign ? {key: a.cosign.key, keyFile: a.cosign.keyFile, form: a.cosign.form} : null}))
}

async function collect(body: AsyncIterable<Buffer>, limit: number, name: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let n = 0
  for await (const chunk of body) {
    n += chunk.length
    if (n > limit) throw integrityError('ENTRY_TOO_LARGE', `${name} is implausibly large`)
    parts.push(Buffer.from(chunk))
  }
  return Buffer.concat(parts)
}

/**
 * The head of a bundle: bundle.json, parsed, and its signature's bytes, read from the first two
 * entries without going further. Nothing in it is checked against a key (see inspectBundle).
 */
export async function readBundleHead(input: BundleInput): Promise<{manifest: BundleManifest; bundleJson: Buffer; signature: Buffer}> {
  const entries = readTar(input.open())
  let bundleJson: Buffer | undefined
  let signature: Buffer | undefined
  try {
    for await (const entry of entries) {
      if (!bundleJson) {
        if (entry.path !== ENTRY.manifest) throw integrityError('UNEXPECTED_ENTRY', `the first entry is "${entry.path}", not bundle.json: not a Ferry bundle`)
        bundleJson = await collect(entry.body, 16 << 20, entry.path)
      } else {
        if (entry.path !== ENTRY.signature) throw integrityError('UNSIGNED', `bundle.json has no signature (found "${entry.path}")`)
        signature = await collect(entry.body, 1 << 20, entry.path)
        break
      }
    }
  } finally {
    await entries.return(undefined)
  }
  if (!bundleJson) throw integrityError('MISSING_ENTRY', `${input.label} is empty or not a Ferry bundle; give a .ferry.tar written by "ferry bundle build"`)
  if (!signature) throw integrityError('UNSIGNED', `${input.label} has no bundle.json.asc (it is unsigned); use a bundle that "ferry bundle build" signed`)
  return {manifest: parseBundleJson(bundleJson), bundleJson, signature}
}

/**
 * Reads only the head of a bundle (bundle.json and its signature): fast on a
 * 10 GiB file. It does not check the blobs; `verifyBundleStream` does that.
 */
export async function inspectBundle(input: BundleInput, keys: PublicKey[] = []): Promise<Inspection> {
  const {manifest, bundleJson, signature} = await readBundleHead(input)
  // OpenPGP is loaded only here: reading the head does not need it
  const {signatureKeyIds, verifyDetached} = await import('../trust/verify.js')
  const signatureKeys = await signatureKeyIds(signature)
  const result: Inspection = {path: input.label, size: input.size, manifest, signatureKeys, images: imageSummaries(manifest), vms: vmSummaries(manifest), chunked: chunkSummaries(manifest)}
  if (keys.length) {
    const verified = await verifyDetached(bundleJson, signature, keys, {what: 'bundle.json.asc'})
    result.verifiedBy = verified.signers.map((s) => s.fingerprint)
  }
  return result
}
