// The CycloneDX 1.6 SBOM of a bundle: one component per artifact it carries, the bundle itself as
// the metadata component. Made from the lock and the image documents alone, so one lock always
// gives the same bytes (docs/bundle-format.md, "SBOM and provenance").
import {type BlobDescriptor, type DescribedArtifact, type DescribedBundle, hexOf, type ImageContents} from './artifact.js'
import {contentUuid, documentBytes, FERRY_VERSION} from './identity.js'
import {genericPurl, ociPurl, registryBlobSource, splitImageRef} from './purl.js'

type Json = Record<string, unknown>
interface Property {
  name: string
  value: string
}

export const BUNDLE_REF = 'bundle'
const MIME_RE = /^[-+a-z0-9.]+\/[-+a-z0-9.]+$/

const sha256 = (digest: string) => [{alg: 'SHA-256', content: hexOf(digest)}]
const mime = (mediaType: string) => (MIME_RE.test(mediaType) ? {'mime-type': mediaType} : {})
const prop = (name: string, value: string | number | undefined): Property[] => (value === undefined ? [] : [{name: `ferry:${name}`, value: String(value)}])

/** How Ferry tied the bytes to their publisher, and the signatures it checked. */
function proofProperties(a: DescribedArtifact): Property[] {
  return [
    ...prop('upstream:verifiedBy', a.upstream.verifiedBy),
    ...prop('upstream:checksumUrl', a.upstream.checksumUrl),
    ...prop('upstream:signatureUrl', a.upstream.signatureUrl),
    ...prop(a.upstream.verifiedBy === 'cosign' ? 'cosign:key' : 'pgp:key', a.upstream.key),
    ...(a.cosign
      ? [...prop('cosign:keyFile', a.cosign.keyFile), ...prop('cosign:form', a.cosign.form), ...prop('cosign:via', a.cosign.via), ...prop('cosign:signature', a.cosign.manifest.digest)]
      : []),
  ]
}

function blobComponent(kind: string, d: BlobDescriptor): Json {
  return {type: 'file', name: d.digest, ...mime(d.mediaType), hashes: sha256(d.digest), properties: [...prop('oci:role', kind), ...prop('size', d.size)]}
}

/** Configs and layers once each, in the manifest's order (the schema wants unique items). */
function blobComponents(m: ImageContents['manifests'][number]): Json[] {
  const seen = new Set<string>()
  const out: Json[] = []
  for (const [kind, d] of [['config', m.config] as const, ...m.layers.map((l) => ['layer', l] as const)]) {
    if (seen.has(d.digest)) continue
    seen.add(d.digest)
    out.push(blobComponent(kind, d))
  }
  return out
}

function imageComponent(a: DescribedArtifact, contents: ImageContents | undefined, sboms: DescribedArtifact[]): Json {
  const {repository, tag} = splitImageRef(a.ref ?? a.name)
  const single = !contents?.index && a.platforms?.length === 1 ? a.platforms[0] : undefined
  const arch = (p: string | undefined) => p?.split('/')[1]
  const children: Json[] = []
  if (contents?.index) {
    for (const m of contents.manifests) {
      children.push({
        type: 'container',
        'bom-ref': `${a.name}@${m.digest}`,
        name: repository,
        version: m.digest,
        ...mime(m.mediaType),
        hashes: sha256(m.digest),
        purl: ociPurl(repository, m.digest, {tag, arch: arch(m.platform)}),
        components: blobComponents(m),
        properties: [...prop('platform', m.platform), ...prop('size', m.size)],
      })
    }
  } else if (contents?.manifests[0]) {
    children.push(...blobComponents(contents.manifests[0]))
  }
  if (a.cosign) {
    const s = a.cosign.manifest
    children.push({type: 'file', name: `${repository}:${a.cosign.via}`, ...mime(s.mediaType), hashes: sha256(s.digest), properties: [...prop('oci:role', 'cosign-signature'), ...prop('size', s.size)]})
  }
  return {
    type: 'container',
    'bom-ref': a.name,
    name: repository,
    version: tag ?? a.digest,
    ...mime(a.mediaType),
    hashes: sha256(a.digest),
    purl: ociPurl(repository, a.digest, {tag, arch: arch(single)}),
    // the SBOMs its registry holds for it, carried in the bundle (a relative reference into the OCI layout)
    ...(sboms.length ? {externalReferences: sboms.map((x) => ({type: 'bom', url: `blobs/sha256/${hexOf(x.digest)}`, comment: `${x.mediaType} from the image's registry, carried as ${x.name}`, hashes: sha256(x.digest)}))} : {}),
    ...(children.length ? {components: children} : {}),
    properties: [
      ...prop('kind', a.kind),
      ...prop('ref', a.ref),
      // where Ferry fetched it: `registry/repository:tag@digest` or a local layout, not a URL
      ...prop('source', a.source),
      ...sboms.flatMap((x) => prop('sbom', x.name)),
      ...(a.platforms ?? []).flatMap((p) => prop('platform', p)),
      ...prop('size', a.size),
      ...proofProperties(a),
    ],
  }
}

const COMPONENT_TYPE = {vm: 'operating-system', k3s: 'application', kubernetes: 'application', file: 'file'} as const

function fileComponent(a: DescribedArtifact): Json {
  // a k3s/kubernetes binary is an application; the archives beside it (airgap images) are files
  const type = (a.kind === 'k3s' || a.kind === 'kubernetes') && !a.dest?.startsWith('bin/') ? 'file' : COMPONENT_TYPE[a.kind as keyof typeof COMPONENT_TYPE]
  const base = a.name.split('/').pop()!
  // a file from a registry (an image's SBOM referrer) has no download URL: its purl names the referrer
  const inRegistry = registryBlobSource(a.source)
  const refs = [
    ...(inRegistry ? [] : [{type: 'distribution', url: a.source, comment: 'downloaded from'}]),
    ...(a.upstream.checksumUrl ? [{type: 'other', url: a.upstream.checksumUrl, comment: 'checksum list the sha256 was checked against'}] : []),
    ...(a.upstream.signatureUrl ? [{type: 'digital-signature', url: a.upstream.signatureUrl, comment: 'OpenPGP signature of the checksum list, verified'}] : []),
  ]
  return {
    type,
    'bom-ref': a.name,
    name: base,
    ...(a.version ? {version: a.version} : {}),
    ...mime(a.mediaType),
    hashes: sha256(a.digest),
    purl: inRegistry ? ociPurl(inRegistry.repository, inRegistry.digest) : genericPurl(base, a.version, hexOf(a.digest), a.source),
    ...(refs.length ? {externalReferences: refs} : {}),
    properties: [
      ...prop('kind', a.kind),
      ...prop('name', a.name),
      ...(inRegistry ? prop('source', a.source) : []),
      ...prop('dest', a.dest),
      ...prop('platform', a.platform),
      ...prop('size', a.size),
      ...(a.chunks ? [...prop('chunks:index', a.chunks.index), ...prop('chunks:count', a.chunks.count)] : []),
      ...proofProperties(a),
    ],
  }
}

/**
 * The SBOM of a bundle, as bytes. `artifacts` are bundle.json's (without the documents),
 * `images` the contents of each image artifact by name. The serial number is a UUID of the
 * rest of the document, so it changes exactly when the content does.
 */
export function makeSbom(bundle: DescribedBundle, artifacts: DescribedArtifact[], images: Map<string, ImageContents>): Buffer {
  const sbomsOf = (image: DescribedArtifact) => artifacts.filter((x) => x.kind === 'file' && x.name.startsWith(`${image.name}/sbom/`))
  const components = artifacts.map((a) => (a.kind === 'image' ? imageComponent(a, images.get(a.name), sbomsOf(a)) : fileComponent(a)))
  const body = {
    metadata: {
      timestamp: bundle.created,
      tools: {components: [{type: 'application', name: 'ferry', version: FERRY_VERSION}]},
      component: {
        type: 'application',
        'bom-ref': BUNDLE_REF,
        name: bundle.name,
        version: bundle.version,
        description: `Ferry bundle ${bundle.name} ${bundle.version}`,
        purl: `pkg:generic/${encodeURIComponent(bundle.name)}@${encodeURIComponent(bundle.version)}`,
        properties: [...bundle.platforms.flatMap((p) => prop('platform', p)), ...prop('expires', bundle.expires)],
      },
    },
    components,
    dependencies: [{ref: BUNDLE_REF, dependsOn: artifacts.map((a) => a.name)}, ...artifacts.map((a) => ({ref: a.name}))],
  }
  const serialNumber = `urn:uuid:${contentUuid('sbom', documentBytes(body))}`
  return documentBytes({$schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json', bomFormat: 'CycloneDX', specVersion: '1.6', serialNumber, version: 1, ...body})
}
