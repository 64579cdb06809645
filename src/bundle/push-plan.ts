import {parseImageDocument, type Descriptor, type ImageDocument} from '../sources/oci/document.js'
import {parseRegistryReference} from '../sources/oci/reference.js'
import {signaturePuts} from './push-signatures.js'
import type {DocumentLookup, PushedImage, PushImage, PushPlan} from './push-types.js'

/** The repository an image goes to: its own path, under the target's prefix. */
export function targetRepository(image: PushImage, prefix: string): string {
  const {repository} = parseRegistryReference(image.ref ?? image.name)
  return prefix ? `${prefix}/${repository}` : repository
}

/**
 * Walks each image's documents to list the blobs every repository needs and the documents to
 * PUT. `inBundle` says which children of an index the bundle holds (carried or, in a delta, left
 * to its base); the others are platforms filtered out at build.
 */
export async function planPush(images: PushImage[], lookup: DocumentLookup, inBundle: (digest: string) => boolean, registry: string, prefix: string): Promise<PushPlan> {
  const plan: PushPlan = {blobs: new Map(), usedBy: new Map(), manifests: [], images: [], unavailable: new Map()}
  const add = (map: Map<string, string[]>, key: string, value: string) => {
    const list = map.get(key) ?? []
    if (!list.includes(value)) list.push(value)
    map.set(key, list)
  }
  for (const image of images) {
    const ref = image.ref ?? image.name
    const source = parseRegistryReference(ref)
    const repo = targetRepository(image, prefix)
    const pushed: PushedImage = {ref, target: `${registry}/${repo}${source.tag ? `:${source.tag}` : `@${image.digest}`}`, digest: image.digest}
    plan.images.push(pushed)
    const document = async <D extends {digest: string; mediaType: string}>(desc: D, what: string) => {
      add(plan.usedBy, desc.digest, ref)
      const bytes = await lookup(desc.digest, repo)
      if (!bytes) {
        add(plan.unavailable, desc.digest, ref)
        return undefined
      }
      return {desc, bytes, doc: parseImageDocument(bytes, desc.mediaType, what)}
    }
    const root = await document(image, ref)
    if (!root) continue
    const children: Array<{desc: Descriptor; bytes: Buffer; doc: ImageDocument}> = []
    if (root.doc.kind === 'index') {
      for (const desc of root.doc.manifests.filter((m) => inBundle(m.digest))) {
        const child = await document(desc, `${ref} child ${desc.digest}`)
        if (child) children.push(child)
      }
    }
    for (const {doc} of root.doc.kind === 'manifest' ? [root] : children) {
      if (doc.kind !== 'manifest') continue
      for (const blob of [doc.config, ...doc.layers]) {
        add(plan.blobs, blob.digest, repo)
        add(plan.usedBy, blob.digest, ref)
      }
    }
    for (const c of children) plan.manifests.push({repo, reference: c.desc.digest, digest: c.desc.digest, mediaType: c.desc.mediaType, bytes: c.bytes})
    const filtered = source.tag && root.doc.kind === 'index' && children.length === 1 && root.doc.manifests.length > 1
    const fallback = filtered ? {digest: children[0].desc.digest, mediaType: children[0].desc.mediaType, bytes: children[0].bytes} : undefined
    plan.manifests.push({repo, reference: source.tag ?? image.digest, digest: image.digest, mediaType: image.mediaType, bytes: root.bytes, ...(fallback ? {fallback, image: pushed} : {})})
    if (image.cosign) {
      // after the image: a signature never names an image the registry does not have yet
      add(plan.usedBy, image.cosign.manifest.digest, ref)
      const bytes = await lookup(image.cosign.manifest.digest, repo)
      if (!bytes) add(plan.unavailable, image.cosign.manifest.digest, ref)
      else {
        const sig = signaturePuts(repo, image.digest, image.cosign, bytes)
        for (const blob of sig.blobs) {
          add(plan.blobs, blob.digest, repo)
          add(plan.usedBy, blob.digest, ref)
        }
        plan.manifests.push(...sig.manifests)
      }
    }
  }
  return plan
}
