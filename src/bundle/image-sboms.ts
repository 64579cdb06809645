// The SBOMs an image's registry holds for it (pinned in the lock, see sources/oci/sbom-referrers.ts),
// carried as `file` artifacts of bundle.json beside their image, so the signature covers them and a
// device of any version accepts them. Their names and entries only (image-sbom-fetch.ts brings them
// in): `bundle verify` reads this without loading any registry code.
import type {LockedArtifact, LockFile} from '../manifest/lock-format.js'
import {parseRegistryReference} from '../sources/oci/reference.js'
import type {BundleArtifact} from './format.js'

/** `.cdx.json` / `.spdx.json`; a cosign attestation (a DSSE envelope around the SBOM) `.cdx.att.json` / `.spdx.att.json` */
const extension = (s: {artifactType: string; predicateType?: string}) => `${(s.predicateType ?? s.artifactType).includes('spdx') ? 'spdx' : 'cdx'}${s.predicateType ? '.att' : ''}.json`

/** `registry/repository` of an image artifact's source (`registry/repository:tag@digest`). */
function repositoryOf(a: LockedArtifact): string {
  const r = parseRegistryReference(a.url)
  return `${r.registry}/${r.repository}`
}

/** bundle.json's entries for the images' SBOMs, in the lock's order: named after their image, sourced from the referrer. */
export function imageSbomArtifacts(lock: LockFile): BundleArtifact[] {
  return lock.artifacts.flatMap((a) =>
    (a.sboms ?? []).map((s) => ({
      name: `${a.name}/sbom/${s.document.digest.slice('sha256:'.length, 'sha256:'.length + 12)}.${extension(s)}`,
      kind: 'file' as const,
      digest: s.document.digest,
      size: s.document.size,
      mediaType: s.document.mediaType,
      source: `${repositoryOf(a)}@${s.manifest.digest}`,
      // a cosign attestation signed by the image's key at lock; else pinned by digest only
      upstream: s.key ? {verifiedBy: 'cosign' as const, key: s.key} : {verifiedBy: 'registry' as const},
    })),
  )
}
