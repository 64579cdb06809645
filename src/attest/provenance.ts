// SLSA provenance v1 of a bundle, as an in-toto Statement v1: what the build produced (every
// artifact and the SBOM, by sha256), from what (the lock, by digest, and the manifest fields it
// resolved), out of which upstream bytes (every URL and image with its digest), by which Ferry.
import {type DescribedArtifact, type DescribedBundle, hexOf} from './artifact.js'
import {BUILD_TYPE, BUILDER_ID, documentBytes, FERRY_VERSION, GENERATED_SOURCE} from './identity.js'
import {ociPurl, registryBlobSource, splitImageRef} from './purl.js'

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1'
export const SLSA_PROVENANCE = 'https://slsa.dev/provenance/v1'

export interface ProvenanceInput {
  bundle: DescribedBundle
  /** bundle.json's artifacts, the SBOM among them (the provenance itself is not) */
  artifacts: DescribedArtifact[]
  /** sha256 digest of the lock file's bytes (as `ferry manifest lock` writes them) */
  lockDigest: string
}

const annotations = (values: Record<string, string | undefined>) => {
  const kept = Object.entries(values).filter((e): e is [string, string] => e[1] !== undefined)
  return kept.length ? {annotations: Object.fromEntries(kept)} : {}
}

/** Every upstream artifact with its digest and where it came from; images also their cosign signature. */
function resolvedDependencies(artifacts: DescribedArtifact[]): unknown[] {
  const out: unknown[] = []
  for (const a of artifacts) {
    if (a.source === GENERATED_SOURCE) continue
    const proof = {verifiedBy: a.upstream.verifiedBy, checksumUrl: a.upstream.checksumUrl, signatureUrl: a.upstream.signatureUrl, key: a.upstream.key}
    if (a.kind !== 'image') {
      const inRegistry = registryBlobSource(a.source)
      const uri = inRegistry ? ociPurl(inRegistry.repository, inRegistry.digest) : a.source
      out.push({uri, digest: {sha256: hexOf(a.digest)}, name: a.name, mediaType: a.mediaType, ...annotations({kind: a.kind, version: a.version, ...(inRegistry ? {source: a.source} : {}), ...proof})})
      continue
    }
    const {repository, tag} = splitImageRef(a.ref ?? a.name)
    out.push({uri: ociPurl(repository, a.digest, {tag}), digest: {sha256: hexOf(a.digest)}, name: a.name, mediaType: a.mediaType, ...annotations({kind: a.kind, source: a.source, ...proof})})
    if (a.cosign) {
      const s = a.cosign.manifest
      out.push({uri: ociPurl(repository, s.digest, {tag: a.cosign.via === 'referrers' ? undefined : a.cosign.via}), digest: {sha256: hexOf(s.digest)}, name: `${a.name} cosign signature`, mediaType: s.mediaType, ...annotations({kind: 'cosign-signature', key: a.cosign.key, keyFile: a.cosign.keyFile, form: a.cosign.form, via: a.cosign.via})})
    }
  }
  return out
}

export function makeProvenance(input: ProvenanceInput): Buffer {
  const b = input.bundle
  return documentBytes({
    _type: STATEMENT_TYPE,
    subject: input.artifacts.map((a) => ({name: a.name, digest: {sha256: hexOf(a.digest)}})),
    predicateType: SLSA_PROVENANCE,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          manifest: {name: b.name, version: b.version, platforms: b.platforms, expires: b.expires},
          lock: {digest: {sha256: hexOf(input.lockDigest)}, resolved: b.created},
        },
        resolvedDependencies: resolvedDependencies(input.artifacts),
      },
      runDetails: {builder: {id: BUILDER_ID, version: {ferry: FERRY_VERSION}}},
    },
  })
}
