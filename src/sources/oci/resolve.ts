import type {CosignProof, LockedArtifact} from '../../manifest/lock-format.js'
import type {CosignKey} from '../../trust/cosign.js'
import {checkImageSignature} from './cosign-check.js'
import type {ProgressListener} from '../../progress.js'
import {mapPool} from '../pool.js'
import {checkConfigPlatform, parseImageDocument, platformString, selectPlatforms} from './document.js'
import {ImageSources, manifestPlatform} from './image-source.js'
import {bundleImageName, formatReference, formatSource, parseImageReference} from './reference.js'
import type {RegistryOptions} from './registry-client.js'
import {MEDIA} from './media-types.js'
import {findSbomReferrers, readAttestation} from './sbom-referrers.js'
import {attestationSignedBy} from '../../trust/attestation.js'

/** An image to pin: its reference, and the cosign keys it must be signed by (any one), if any. */
export interface ImageToPin {
  ref: string
  cosign?: CosignKey[]
}

export interface ResolveImagesOptions {
  /** where relative `oci:`/`oci-archive:` paths start (the manifest's folder) */
  manifestDir: string
  registry?: RegistryOptions
  /** images resolved at once; default 8 */
  concurrency?: number
  onProgress?: ProgressListener
}

/**
 * Pins every `images:` entry to the digest of its manifest or index, now. An index must offer
 * every platform of the bundle (exit 2 otherwise, listing what it has), a single manifest one of
 * them (named in its config); the lock records the platforms kept and the bytes the image will
 * add (its documents, configs and layers).
 */
export async function resolveImages(images: Array<string | ImageToPin>, platforms: string[], opts: ResolveImagesOptions): Promise<LockedArtifact[]> {
  const sources = new ImageSources(opts.registry)
  let done = 0
  return mapPool(images, opts.concurrency ?? 8, async (entry) => {
    const {ref: text, cosign: keys} = typeof entry === 'string' ? {ref: entry, cosign: undefined} : entry
    const ref = parseImageReference(text, opts.manifestDir)
    const source = await sources.open(ref)
    const root = await source.root()
    const doc = parseImageDocument(root.bytes, root.mediaType, source.name)
    let size = root.bytes.length
    let kept: string[] | undefined
    if (doc.kind === 'index') {
      const children = selectPlatforms(doc, platforms, source.name)
      kept = children.map((c) => platformString(c.platform))
      for (const child of children) {
        const got = await source.document(child)
        const manifest = parseImageDocument(got.bytes, child.mediaType, `${source.name} ${platformString(child.platform)}`)
        if (manifest.kind !== 'manifest') continue
        size += got.bytes.length + manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0)
      }
    } else {
      size += doc.config.size + doc.layers.reduce((n, l) => n + l.size, 0)
      // one platform, named in the config: checked now rather than at build, and shown by inspect
      const platform = await manifestPlatform(source, doc.config)
      checkConfigPlatform(platform, platforms, source.name)
      if (platform) kept = [platformString(platform)]
    }
    const name = bundleImageName(ref)
    let cosign: CosignProof | undefined
    let imageKey: CosignKey | undefined
    if (keys?.length && ref.transport === 'registry') {
      // The signature is on the digest the reference names now (an index's for a multi-arch image).
      const {key, signature} = await checkImageSignature(sources.registries, ref, source.name, root.digest, keys)
      imageKey = key
      const m = signature.manifest
      cosign = {key: key.fingerprint, keyFile: key.file, publicKey: key.pem, form: signature.form, via: signature.via, manifest: {mediaType: m.mediaType || MEDIA.ociManifest, digest: m.digest, size: m.bytes.length}}
    }
    // SBOMs the registry holds for the image (referrers, attestations), pinned now so that every build carries the same
    const sboms = ref.transport === 'registry' ? await findSbomReferrers(sources.registries, ref, root.digest) : []
    // an attestation signed by the key that signed the image says so (others travel as the registry had them)
    if (imageKey && ref.transport === 'registry') {
      for (const s of sboms) {
        const envelope = await readAttestation(sources.registries, ref, s)
        if (envelope && attestationSignedBy(imageKey, root.digest, envelope)) s.key = imageKey.fingerprint
      }
    }
    opts.onProgress?.({phase: 'resolve', item: name, done: ++done, total: images.length, unit: images.length === 1 ? 'image' : 'images'})
    return {
      name: `images/${name}`,
      kind: 'image' as const,
      url: ref.transport === 'registry' ? formatReference({...ref, digest: root.digest}) : formatSource(ref),
      sha256: root.digest.slice('sha256:'.length),
      size: root.bytes.length,
      mediaType: doc.mediaType,
      ref: name,
      ...(kept ? {platforms: kept} : {}),
      imageSize: size,
      upstream: cosign ? {verifiedBy: 'cosign' as const, key: cosign.key} : {verifiedBy: 'registry' as const},
      ...(cosign ? {cosign} : {}),
      ...(sboms.length ? {sboms} : {}),
    }
  })
}
