// The SBOM and the provenance a bundle carries: two artifacts of bundle.json (kind `file`, so a
// device of any version accepts them), whose blobs the signed digests cover like any other.
import {Readable} from 'node:stream'
import type {ImageContents} from '../attest/artifact.js'
import {GENERATED_SOURCE, PROVENANCE_MEDIA_TYPE, PROVENANCE_NAME, SBOM_MEDIA_TYPE, SBOM_NAME} from '../attest/identity.js'
import {makeProvenance} from '../attest/provenance.js'
import {makeSbom} from '../attest/sbom.js'
import {usageError} from '../errors.js'
import {LockFile} from '../manifest/lock-format.js'
import {parseImageDocument, platformString, selectPlatforms} from '../sources/oci/document.js'
import type {BlobStore} from '../store/blob-store.js'
import {sha256Of} from '../store/hashing.js'
import type {BundleArtifact} from './format.js'
import {imageSbomArtifacts} from './image-sboms.js'
import type {BlobFile} from './write.js'

export {PROVENANCE_NAME, SBOM_NAME} from '../attest/identity.js'

/** Readers hold a document in memory whole to check it (document-check.ts), up to this size. */
export const DOCUMENT_MAX = 16 << 20

/** Reads a small blob (an image manifest or index); undefined when it is not at hand. */
export type ReadDocument = (digest: string, size: number) => Promise<Buffer | undefined>

export interface BundleDocuments {
  /** the SBOM's and the provenance's entries, in that order, for the end of bundle.json's artifacts */
  artifacts: BundleArtifact[]
  /** their bytes by digest */
  bytes: Map<string, Buffer>
}

/** The SBOM or provenance entry of bundle.json: written by Ferry at build, not fetched. */
export function isBundleDocument(a: Pick<BundleArtifact, 'kind' | 'source'>): boolean {
  return a.kind === 'file' && a.source === GENERATED_SOURCE
}

/**
 * The lock without artifacts that a build makes itself: Ferry's documents and the images' SBOMs
 * (a lock written back from a bundle.json names them). The build makes them anew.
 */
export function withoutDocuments(lock: LockFile): LockFile {
  const made = new Set(imageSbomArtifacts(lock).map((a) => a.name))
  const kept = lock.artifacts.filter((a) => !isBundleDocument({kind: a.kind, source: a.url}) && !(a.kind === 'file' && made.has(a.name)))
  return kept.length === lock.artifacts.length ? lock : {...lock, artifacts: kept}
}

/** The sha256 digest of a lock as `ferry manifest lock` writes the file. */
export function lockDigest(lock: LockFile): string {
  return sha256Of(`${JSON.stringify(LockFile.parse(lock), null, 2)}\n`)
}

/** Each image's platform manifests (an index's children kept for the lock's platforms), configs and layers. */
async function imageContents(lock: LockFile, artifacts: BundleArtifact[], read: ReadDocument): Promise<Map<string, ImageContents>> {
  const out = new Map<string, ImageContents>()
  const load = async (digest: string, size: number, mediaType: string, what: string) => {
    const bytes = await read(digest, size)
    if (!bytes) throw new Error(`${what}: document ${digest} is not in the store`)
    return parseImageDocument(bytes, mediaType, what)
  }
  for (const a of artifacts.filter((x) => x.kind === 'image')) {
    const what = a.ref ?? a.name
    const root = await load(a.digest, a.size, a.mediaType, what)
    const contents: ImageContents = {index: root.kind === 'index', manifests: []}
    const children = root.kind === 'index' ? selectPlatforms(root, lock.platforms, what) : [{mediaType: a.mediaType, digest: a.digest, size: a.size, platform: undefined}]
    for (const child of children) {
      const doc = child.digest === a.digest ? root : await load(child.digest, child.size, child.mediaType, what)
      if (doc.kind !== 'manifest') continue
      const strip = (d: {mediaType: string; digest: string; size: number}) => ({mediaType: d.mediaType, digest: d.digest, size: d.size})
      contents.manifests.push({...strip(child), ...(child.platform ? {platform: platformString(child.platform)} : {}), config: strip(doc.config), layers: doc.layers.map(strip)})
    }
    out.set(a.name, contents)
  }
  return out
}

function documentArtifact(name: string, mediaType: string, bytes: Buffer): BundleArtifact {
  return {name, kind: 'file', digest: sha256Of(bytes), size: bytes.length, mediaType, source: GENERATED_SOURCE, upstream: {verifiedBy: 'sha256'}}
}

/**
 * The SBOM of the lock's artifacts (`artifacts`: bundle.json's, as the build made them) and the
 * provenance of the whole bundle, from the lock and the image documents `read` finds. A full
 * bundle and a delta of one lock carry the same two documents.
 */
export async function makeBundleDocuments(lock: LockFile, artifacts: BundleArtifact[], read: ReadDocument, digestOfLock = lockDigest(lock)): Promise<BundleDocuments> {
  const bundle = {name: lock.name, version: lock.version, created: lock.resolved, expires: lock.expires, platforms: lock.platforms}
  const sbom = makeSbom(bundle, artifacts, await imageContents(lock, artifacts, read))
  // readers hold a document whole to check it (document-check.ts): one they could not read is not written
  if (sbom.length > DOCUMENT_MAX) throw usageError('SBOM_TOO_LARGE', `the SBOM of ${lock.name} ${lock.version} would be ${sbom.length} bytes, above the limit of ${DOCUMENT_MAX}: split the bundle`)
  const sbomArtifact = documentArtifact(SBOM_NAME, SBOM_MEDIA_TYPE, sbom)
  const provenance = makeProvenance({bundle, artifacts: [...artifacts, sbomArtifact], lockDigest: digestOfLock})
  const provenanceArtifact = documentArtifact(PROVENANCE_NAME, PROVENANCE_MEDIA_TYPE, provenance)
  return {
    artifacts: [sbomArtifact, provenanceArtifact],
    bytes: new Map([
      [sbomArtifact.digest, sbom],
      [provenanceArtifact.digest, provenance],
    ]),
  }
}

/** Puts the documents into the store (where the archive writer copies blobs from); their blob files. */
export async function storeDocuments(documents: BundleDocuments, store: BlobStore): Promise<BlobFile[]> {
  const out: BlobFile[] = []
  for (const [digest, bytes] of documents.bytes) {
    if (!(await store.has(digest))) await store.ingest(Readable.from([bytes]), {digest, size: bytes.length, what: `bundle document ${digest}`})
    out.push({digest, size: bytes.length, path: store.pathOf(digest)})
  }
  return out
}
