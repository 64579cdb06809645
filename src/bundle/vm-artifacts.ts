// VM images from OCI registries, at build: the artifact manifest (which must still name the disk
// layer the lock pins), its config and index, and the notation signatures the lock names, read
// from the store or fetched by digest, signatures checked again against the root the lock holds,
// all kept in the store and carried as blobs named by bundle.json. The disk layer itself is
// fetched from the registry into the store like any blob, checked against its digest.
import {Readable} from 'node:stream'
import {integrityError, trustError} from '../errors.js'
import type {LockedArtifact} from '../manifest/lock-format.js'
import type {ProgressListener} from '../progress.js'
import type {Descriptor} from '../sources/oci/document.js'
import {verifyNotation} from '../sources/oci/notation-check.js'
import type {FoundNotation} from '../sources/oci/notation-find.js'
import {parseRegistryReference} from '../sources/oci/reference.js'
import type {RegistryPool} from '../sources/oci/registry-source.js'
import type {BlobStore} from '../store/blob-store.js'
import {parseNotationRoot, type NotationTarget} from '../trust/notation.js'
import type {BlobFile} from './write.js'

export interface CarryOptions {
  now: Date
  /** blobs a delta's base has: neither fetched nor carried */
  skip?: (digest: string) => boolean
  onProgress?: ProgressListener
}

const isOci = (a: LockedArtifact) => a.kind === 'vm' && a.oci !== undefined

/** Fetches a VM artifact's disk layer from its registry into the store (resumed, checked); bytes that crossed the network. */
export function fetchOciDisk(a: LockedArtifact, store: BlobStore, pool: RegistryPool, onData?: (bytes: number) => void): Promise<number> {
  const ref = parseRegistryReference(a.oci!.ref)
  const source = pool.source({...ref, tag: undefined, digest: a.oci!.manifest.digest})
  return source.fetchBlob(store, {mediaType: a.mediaType, digest: `sha256:${a.sha256}`, size: a.size}, onData)
}

/** Every OCI VM artifact's documents and signatures, checked; the blobs to carry (disk layers excluded: they are artifacts). */
export async function carryOciVms(artifacts: LockedArtifact[], store: BlobStore, pool: RegistryPool, options: CarryOptions): Promise<BlobFile[]> {
  const out = new Map<string, BlobFile>()
  for (const a of artifacts.filter(isOci)) {
    const oci = a.oci!
    const ref = parseRegistryReference(oci.ref)
    const what = `${a.name} (${oci.ref}@${oci.manifest.digest})`
    const source = pool.source({...ref, tag: undefined, digest: oci.manifest.digest})
    const small = async (d: Descriptor, document: boolean): Promise<Buffer> => {
      const kept = await store.readSmall(d.digest, d.size)
      if (kept) return kept
      const bytes = document ? (await source.document(d)).bytes : await source.config(d)
      await store.ingest(Readable.from([bytes]), {digest: d.digest, size: bytes.length, what})
      return bytes
    }
    const carry = async (d: Descriptor, document: boolean) => {
      if (options.skip?.(d.digest)) return undefined
      const bytes = await small(d, document)
      out.set(d.digest, {digest: d.digest, size: d.size, path: store.pathOf(d.digest)})
      return bytes
    }
    const manifest = await small(oci.manifest, true)
    const layers = (JSON.parse(manifest.toString('utf8')) as {layers?: Descriptor[]}).layers ?? []
    if (!layers.some((l) => l.digest === `sha256:${a.sha256}` && l.size === a.size)) {
      throw integrityError('VM_LAYER_MISMATCH', `${what}: the artifact manifest no longer names the disk layer sha256:${a.sha256} the lock pins; lock again`)
    }
    await carry(oci.manifest, true)
    await carry(oci.config, false)
    if (oci.index) await carry(oci.index, true)
    const found: FoundNotation[] = []
    for (const s of a.notation?.signatures ?? []) {
      const sigManifest = await small(s.manifest, true)
      const [config, envelope] = [await small(s.config, false), await small(s.envelope, false)]
      for (const [d, doc] of [[s.manifest, true], [s.config, false], [s.envelope, false]] as const) await carry(d, doc)
      found.push({manifest: {bytes: sigManifest, digest: s.manifest.digest, mediaType: s.manifest.mediaType}, config: {desc: s.config, bytes: config}, envelope: {desc: s.envelope, bytes: envelope}, subject: s.subject, via: a.notation!.via})
    }
    const ca = a.notation?.ca
    if (ca) {
      const targets = new Map<string, NotationTarget>([[oci.manifest.digest, oci.manifest], ...(oci.index ? [[oci.index.digest, oci.index] as [string, NotationTarget]] : [])])
      verifyNotation(what, parseNotationRoot(ca.pem, ca.file), targets, found, options.now)
    } else if (a.upstream.verifiedBy === 'notation') {
      throw trustError('VM_SIGNATURE_INVALID', `${what}: the lock says a notation signature verified it but names no root; lock again`)
    }
    if (!options.skip?.(`sha256:${a.sha256}`) && !(await store.has(`sha256:${a.sha256}`))) {
      let done = 0
      await fetchOciDisk(a, store, pool, (n) => options.onProgress?.({phase: 'fetch', item: a.name, done: (done += n), total: a.size}))
    }
  }
  return [...out.values()]
}

/** The blobs beside an OCI VM artifact's disk: manifest, config, index, and each signature's manifest, config and envelope. */
export function ociBlobDigests(a: LockedArtifact): string[] {
  if (!a.oci) return []
  const sigs = (a.notation?.signatures ?? []).flatMap((s) => [s.manifest.digest, s.config.digest, s.envelope.digest])
  return [a.oci.manifest.digest, a.oci.config.digest, ...(a.oci.index ? [a.oci.index.digest] : []), ...sigs]
}
