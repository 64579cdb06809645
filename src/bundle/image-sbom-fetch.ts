// Bringing the images' SBOMs a lock pins into the store at build: from the registry, by digest.
import type {LockFile} from '../manifest/lock-format.js'
import {parseRegistryReference} from '../sources/oci/reference.js'
import type {RegistryPool} from '../sources/oci/registry-source.js'
import {fetchSbomDocument} from '../sources/oci/sbom-referrers.js'
import type {BlobStore} from '../store/blob-store.js'
import type {BlobFile} from './write.js'

/** Brings every image SBOM the lock names into the store (from the registry, by digest) unless it is there or `skip` says so. */
export async function fetchImageSboms(lock: LockFile, store: BlobStore, pool: RegistryPool, skip: (digest: string) => boolean = () => false): Promise<BlobFile[]> {
  const out: BlobFile[] = []
  for (const a of lock.artifacts) {
    for (const s of a.sboms ?? []) {
      if (skip(s.document.digest)) continue
      await fetchSbomDocument(pool, parseRegistryReference(a.url), s, store)
      out.push({digest: s.document.digest, size: s.document.size, path: store.pathOf(s.document.digest)})
    }
  }
  return out
}
