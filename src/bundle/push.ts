import type {PublicKey} from 'openpgp'
import {RegistryClient, type RegistryOptions} from '../sources/oci/registry-client.js'
import {fetchDocument} from '../sources/oci/registry-document.js'
import {putManifest} from '../sources/oci/registry-push.js'
import {FerryError, integrityError, usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {loadVerifyBase, type BundleBase} from './delta-base.js'
import {bundleFileName, ENTRY, type BundleManifest} from './format.js'
import {openBundleInput, type BundleInput} from './input.js'
import {BlobPusher, type Lacking, type PushTally} from './push-blobs.js'
import {planPush, targetRepository} from './push-plan.js'
import {putReferrerTag} from './push-signatures.js'
import type {ManifestPut, PushedImage, PushPlan} from './push-types.js'
import {readTar} from './tar-reader.js'
import {parseBundleJson} from './format.js'
import {verifyBundleStream, type BaseBlobs, type BlobSink} from './verify.js'

export type {PushedImage} from './push-types.js'

export interface PushOptions {
  keys: PublicKey[]
  registry?: RegistryOptions
  /** for a delta: its full base bundle, to send the blobs the registry lacks from */
  base?: string
  now?: Date
  onProgress?: ProgressListener
}

export interface PushResult extends PushTally {
  images: PushedImage[]
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

/** Where a delta's omitted blobs come from: the registry itself, or a base bundle given as well. */
interface DeltaSource {
  /** what verification is told about the omitted blobs */
  blobs: BaseBlobs
  base?: {bundle: BundleBase; input: BundleInput; carries: (digest: string) => boolean}
}

/**
 * Loads a bundle's images into a registry: verify the bundle first (one pass, signature and
 * every digest), then stream it again and send each blob the registry lacks, mounting from
 * another repository of the same registry where it already is, then PUT the manifests (children
 * first, the tagged one last). Images keep their repository path under PREFIX and their tag.
 *
 * A delta leaves out what its base carried. Those blobs must already be in the registry (the
 * base was pushed there) or come from the base bundle (`base`); the push checks that before it
 * writes any manifest and refuses otherwise, so the registry never holds an image with a blob missing.
 */
export async function pushBundle(input: BundleInput, target: string, options: PushOptions): Promise<PushResult> {
  const {registry, prefix} = parseTarget(target)
  const header = await readUnverifiedHeader(input)
  const delta = header?.base ? await deltaSource(header.base.digest, options) : undefined
  const small = new Map<string, Buffer>()
  const report = await verifyBundleStream(input.open(), {
    keys: options.keys,
    now: options.now,
    totalSize: input.size,
    onProgress: options.onProgress,
    blobSink: keepDocuments(small),
    ...(delta ? {base: delta.blobs} : {}),
  })
  const manifest = report.manifest
  const omitted = new Set(manifest.omitted ?? [])
  const client = new RegistryClient(registry, options.registry)
  const images = manifest.artifacts.filter((a) => a.kind === 'image')
  const repos = [...new Set(images.map((i) => targetRepository(i, prefix)))]
  const lookup = async (digest: string, repo: string) => {
    const known = small.get(digest) ?? delta?.blobs.content?.(digest)
    if (known || !omitted.has(digest)) return known
    for (const r of [repo, ...repos.filter((o) => o !== repo)]) {
      const bytes = await fetchDocument(client, r, digest)
      if (bytes) return bytes
    }
    return undefined
  }
  const plan = await planPush(images, lookup, (d) => small.has(d) || omitted.has(d), registry, prefix)
  if (!manifest.base && plan.unavailable.size) {
    const [digest, refs] = [...plan.unavailable][0]
    throw integrityError('MISSING_BLOB', `${refs[0]}: ${digest} is not in the bundle`)
  }
  const pusher = new BlobPusher(client, {blobs: {uploaded: 0, mounted: 0, present: 0}, bytes: 0})
  const lacking = await pusher.survey(plan.blobs)
  const carried: Lacking = new Map([...lacking].filter(([d]) => !omitted.has(d)))
  const leftOut: Lacking = new Map([...lacking].filter(([d]) => omitted.has(d)))
  if (manifest.base) await completeOmitted(pusher, plan, leftOut, repos, manifest, delta?.base, target)
  await pusher.sendFrom(input, carried)
  await putManifests(client, pusher, plan.manifests)
  return {images: plan.images, ...pusher.tally}
}

/**
 * The blobs a delta leaves out that repositories of the push lack: mounted from another
 * repository of the registry that holds them, else sent from the base bundle. Refused before
 * anything is written when the registry has some nowhere and no base carries them; a mount the
 * registry turns down needs the base too. Either way no manifest has been written yet.
 */
async function completeOmitted(pusher: BlobPusher, plan: PushPlan, lacking: Lacking, repos: string[], manifest: BundleManifest, base: DeltaSource['base'], target: string): Promise<void> {
  await pusher.findElsewhere([...lacking.keys()].filter((d) => !pusher.holds(d)), repos)
  const refuse = (missing: string[]) => {
    if (missing.length) throw baseMissing(missing, plan, manifest, base?.bundle, target, base?.input.label)
  }
  const nowhere = [...lacking.keys()].filter((d) => !pusher.holds(d))
  // An image document found nowhere leaves the image's blobs unknown: a base cannot make up for it.
  refuse([...plan.unavailable.keys(), ...nowhere.filter((d) => !base?.carries(d))])
  const unlinked = await pusher.mountKnown(lacking)
  refuse([...unlinked.keys()].filter((d) => !base?.carries(d)))
  if (base && unlinked.size) await pusher.sendFrom(base.input, unlinked)
}

/** The refusal when neither the registry nor a given base holds blobs a delta leaves out. */
function baseMissing(missing: string[], plan: PushPlan, manifest: BundleManifest, given: BundleBase | undefined, target: string, label?: string): FerryError {
  const images = [...new Set(missing.flatMap((d) => plan.usedBy.get(d) ?? []))]
  const named = `${images.slice(0, 5).join(', ')}${images.length > 5 ? `, and ${images.length - 5} more` : ''}`
  const b = manifest.base!
  const file = bundleFileName(b.name, b.version)
  const lacks = `${missing.length} blob(s) of ${named} that this delta leaves out`
  // A base given that is itself a delta leaves some out too: its own base must reach the registry first.
  const next = given?.manifest.base
  const message = given
    ? `neither ${target} nor ${label} holds ${lacks}: push ${next ? `${next.name} ${next.version} (${bundleFileName(next.name, next.version)})` : `${b.name} ${b.version}`} to ${target} first`
    : `${target} lacks ${lacks}: push the base bundle ${b.name} ${b.version} (${file}) to it first, or give that bundle with --base ${file}`
  return new FerryError('usage', 'DELTA_BASE_MISSING', message, {details: {base: b, missing, images}})
}

/** The base of a delta for `pushBundle`: read and checked when given, else the registry stands in for it. */
async function deltaSource(digest: string, options: PushOptions): Promise<DeltaSource> {
  if (!options.base) {
    // Verification takes the omitted blobs on trust here; the push then finds each one in the
    // registry, by digest, before it writes any manifest.
    return {blobs: {digest, has: () => true}}
  }
  const bundle = await loadVerifyBase(options.base, options.onProgress)
  const notCarried = new Set(bundle.manifest.omitted ?? [])
  return {blobs: bundle, base: {bundle, input: await openBundleInput(options.base), carries: (d) => bundle.has(d) && !notCarried.has(d)}}
}

/**
 * bundle.json, read before verification only to learn whether the bundle is a delta and which
 * base it names; verification then checks the signature over the same bytes. Undefined when it
 * cannot be read: verification reports why.
 */
async function readUnverifiedHeader(input: BundleInput): Promise<BundleManifest | undefined> {
  const chunks = input.open()[Symbol.asyncIterator]()
  try {
    const first = (await readTar({[Symbol.asyncIterator]: () => chunks}).next()).value
    if (!first || first.path !== ENTRY.manifest || first.size > 16 << 20) return undefined
    const parts: Buffer[] = []
    for await (const chunk of first.body) parts.push(Buffer.from(chunk))
    return parseBundleJson(Buffer.concat(parts))
  } catch {
    return undefined
  } finally {
    await chunks.return?.()
  }
}

/** A verify-pass sink keeping the bundle's small JSON blobs (image documents), to plan the push. */
function keepDocuments(small: Map<string, Buffer>) {
  return async (digest: string, size: number): Promise<BlobSink | undefined> => {
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
  }
}

/** PUTs the documents once every blob is in, children first, each image's tagged one last. */
async function putManifests(client: RegistryClient, pusher: BlobPusher, manifests: ManifestPut[]): Promise<void> {
  for (const m of manifests) {
    if (m.referrer) {
      await putReferrerTag(client, {...m, referrer: m.referrer})
      continue
    }
    try {
      await putManifest(client, m.repo, m.reference, m.bytes, m.mediaType)
    } catch (err) {
      // Registries that check an index's children (distribution does) refuse one whose other
      // platforms were left out; the tag then names the kept child, still a signed digest, and
      // the index is kept as a blob so a later delta, which leaves it out, still finds it.
      if (!m.fallback || !/MANIFEST_BLOB_UNKNOWN/.test((err as Error).message)) throw err
      await pusher.keepAsBlob(m.repo, m.digest, m.bytes)
      await putManifest(client, m.repo, m.reference, m.fallback.bytes, m.fallback.mediaType)
      if (m.image) Object.assign(m.image, {digest: m.fallback.digest, platformManifest: true})
    }
  }
}
