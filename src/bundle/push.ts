import type {PublicKey} from 'openpgp'
import {parseImageDocument} from '../sources/oci/document.js'
import {parseRegistryReference} from '../sources/oci/reference.js'
import {RegistryClient, type RegistryOptions} from '../sources/oci/registry-client.js'
import {hasBlob, mountBlob, putManifest, uploadBlob} from '../sources/oci/registry-push.js'
import {integrityError, usageError} from '../ui/errors.js'
import type {ProgressListener} from '../ui/progress.js'
import {ENTRY} from './format.js'
import type {BundleInput} from './input.js'
import {readTar} from './tar-reader.js'
import {verifyBundleStream} from './verify.js'

export interface PushOptions {
  keys: PublicKey[]
  registry?: RegistryOptions
  now?: Date
  onProgress?: ProgressListener
}

export interface PushedImage {
  ref: string
  /** where it went: registry/repository:tag */
  target: string
  digest: string
  /** set when the registry refused a platform-filtered index and got its one kept child instead */
  platformManifest?: boolean
}

export interface PushResult {
  images: PushedImage[]
  blobs: {uploaded: number; mounted: number; present: number}
  /** bytes sent */
  bytes: number
}

/** Manifests, indexes and configs are small: kept from the verify pass to plan the push. */
const SMALL = 4 << 20

/** `host[:port][/prefix]` → registry and repository prefix. */
export function parseTarget(target: string): {registry: string; prefix: string} {
  const t = target.replace(/^docker:\/\//, '').replace(/\/+$/, '')
  const slash = t.indexOf('/')
  const registry = slash < 0 ? t : t.slice(0, slash)
  const prefix = slash < 0 ? '' : t.slice(slash + 1)
  if (!registry || !/^[A-Za-z0-9.[\]:-]+$/.test(registry)) throw usageError('BAD_TARGET', `"${target}" is not REGISTRY[/PREFIX] (e.g. registry.site.local:5000/edge)`)
  return {registry, prefix}
}

interface Plan {
  /** digest → repositories that need it, in push order */
  blobs: Map<string, string[]>
  /** documents to PUT, children before their index; `fallback`: the one child kept of a filtered index */
  manifests: Array<{repo: string; reference: string; digest: string; mediaType: string; fallback?: {digest: string; mediaType: string}; image?: PushedImage}>
  images: PushedImage[]
}

/**
 * Loads a bundle's images into a registry: verify the bundle first (one pass, signature and
 * every digest), then stream it again and send each blob the registry lacks, mounting from
 * another repository of the same registry where it already is, then PUT the manifests (children
 * first, the tagged one last). Images keep their repository path under PREFIX and their tag.
 */
export async function pushBundle(input: BundleInput, target: string, options: PushOptions): Promise<PushResult> {
  const {registry, prefix} = parseTarget(target)
  const small = new Map<string, Buffer>()
  const report = await verifyBundleStream(input.open(), {
    keys: options.keys,
    now: options.now,
    totalSize: input.size,
    onProgress: options.onProgress,
    blobSink: async (digest, size) => {
      if (size > SMALL) return undefined
      const parts: Buffer[] = []
      let json = true
      return {
        // Only JSON documents are kept (a small layer is not worth the memory).
        write: async (chunk) => {
          if (parts.length === 0 && chunk[0] !== 0x7b) json = false
          if (json) parts.push(Buffer.from(chunk))
        },
        commit: async () => void (json && small.set(digest, Buffer.concat(parts))),
        abort: async () => undefined,
      }
    },
  })
  if (report.manifest.base) throw usageError('DELTA_PUSH', 'a delta bundle lacks the blobs its base carries: push the full bundle')
  const plan = planPush(report.manifest.artifacts.filter((a) => a.kind === 'image'), small, registry, prefix)
  const client = new RegistryClient(registry, options.registry)
  const where = new Map<string, string>()
  const result: PushResult = {images: plan.images, blobs: {uploaded: 0, mounted: 0, present: 0}, bytes: 0}
  // Before streaming: what the registry has, and what a mount can link without sending bytes.
  const toSend = new Map<string, string[]>()
  for (const [digest, repos] of plan.blobs) {
    const missing: string[] = []
    for (const repo of repos) {
      if (await hasBlob(client, repo, digest)) {
        result.blobs.present++
        where.set(digest, repo)
      } else missing.push(repo)
    }
    if (missing.length) toSend.set(digest, missing)
  }
  for (let pass = 0; toSend.size > 0; pass++) {
    if (pass >= 3) throw integrityError('PUSH_INCOMPLETE', `${toSend.size} blob(s) could not be pushed to ${registry}`)
    const remaining = new Map<string, string[]>()
    for await (const entry of readTar(input.open())) {
      const digest = entry.path.startsWith(ENTRY.blobPrefix) ? `sha256:${entry.path.slice(ENTRY.blobPrefix.length)}` : ''
      const repos = toSend.get(digest)
      let consumed = false
      if (repos) {
        const again: string[] = []
        for (const repo of repos) {
          const from = where.get(digest)
          if (from && (await mountBlob(client, repo, digest, from))) {
            result.blobs.mounted++
            continue
          }
          if (consumed) {
            again.push(repo)
            continue
          }
          await uploadBlob(client, repo, digest, entry.size, entry.body)
          consumed = true
          result.blobs.uploaded++
          result.bytes += entry.size
          where.set(digest, repo)
        }
        if (again.length) remaining.set(digest, again)
      }
      if (!consumed) for await (const chunk of entry.body) void chunk
    }
    toSend.clear()
    for (const [d, r] of remaining) toSend.set(d, r)
  }
  for (const m of plan.manifests) {
    try {
      await putManifest(client, m.repo, m.reference, small.get(m.digest)!, m.mediaType)
    } catch (err) {
      // Registries that check an index's children (distribution does) refuse one whose other
      // platforms were left out; the tag then names the kept child, still a signed digest.
      if (!m.fallback || !/MANIFEST_BLOB_UNKNOWN/.test((err as Error).message)) throw err
      await putManifest(client, m.repo, m.reference, small.get(m.fallback.digest)!, m.fallback.mediaType)
      if (m.image) Object.assign(m.image, {digest: m.fallback.digest, platformManifest: true})
    }
  }
  return result
}

function planPush(images: Array<{ref?: string; name: string; digest: string; mediaType: string}>, small: Map<string, Buffer>, registry: string, prefix: string): Plan {
  const plan: Plan = {blobs: new Map(), manifests: [], images: []}
  const need = (digest: string, repo: string) => {
    const repos = plan.blobs.get(digest) ?? []
    if (!repos.includes(repo)) repos.push(repo)
    plan.blobs.set(digest, repos)
  }
  const doc = (digest: string, mediaType: string, what: string) => {
    const bytes = small.get(digest)
    if (!bytes) throw integrityError('MISSING_BLOB', `${what}: ${digest} is not in the bundle`)
    return parseImageDocument(bytes, mediaType, what)
  }
  for (const image of images) {
    const source = parseRegistryReference(image.ref ?? image.name)
    const repo = prefix ? `${prefix}/${source.repository}` : source.repository
    const reference = source.tag ?? image.digest
    const root = doc(image.digest, image.mediaType, image.ref ?? image.name)
    const manifests = root.kind === 'index' ? root.manifests.filter((m) => small.has(m.digest)).map((m) => ({desc: m, doc: doc(m.digest, m.mediaType, `${image.ref} child`)})) : []
    const all = root.kind === 'manifest' ? [{desc: {digest: image.digest, mediaType: image.mediaType}, doc: root}] : manifests
    for (const {doc: m} of all) {
      if (m.kind !== 'manifest') continue
      need(m.config.digest, repo)
      for (const l of m.layers) need(l.digest, repo)
    }
    for (const c of manifests) plan.manifests.push({repo, reference: c.desc.digest, digest: c.desc.digest, mediaType: c.desc.mediaType})
    const pushed: PushedImage = {ref: image.ref ?? image.name, target: `${registry}/${repo}${source.tag ? `:${source.tag}` : `@${image.digest}`}`, digest: image.digest}
    const fallback = source.tag && manifests.length === 1 && root.kind === 'index' && root.manifests.length > 1 ? {digest: manifests[0].desc.digest, mediaType: manifests[0].desc.mediaType} : undefined
    plan.manifests.push({repo, reference, digest: image.digest, mediaType: image.mediaType, ...(fallback ? {fallback, image: pushed} : {})})
    plan.images.push(pushed)
  }
  return plan
}
