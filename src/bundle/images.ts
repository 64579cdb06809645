import {Readable} from 'node:stream'
import type {LockedArtifact, LockFile} from '../manifest/lock-format.js'
import {mapPool} from '../sources/pool.js'
import {checkConfigPlatform, MAX_DOCUMENT, parseImageDocument, parsePlatform, selectPlatforms, type Descriptor} from '../sources/oci/document.js'
import {ImageSources, manifestPlatform, type ImageSource} from '../sources/oci/image-source.js'
import {parseImageReference} from '../sources/oci/reference.js'
import type {RegistryOptions} from '../sources/oci/registry-client.js'
import type {BlobStore} from '../store/blob-store.js'
import type {BlobWriter} from '../store/blob-writer.js'
import type {BlobFile} from './write.js'

export const REF_NAME = 'org.opencontainers.image.ref.name'
export const CONTAINERD_NAME = 'io.containerd.image.name'

export interface PlanImagesOptions {
  store: BlobStore
  registry?: RegistryOptions
  /** blobs not to fetch or carry (a delta's base has them) */
  skip?: (digest: string) => boolean
}

/** One blob to bring into the store: a config or a layer. */
export interface BlobJob {
  digest: string
  size: number
  /** downloads it into the store unless it is there; reports bytes as they arrive; resolves to the bytes downloaded */
  fetch(onData: (bytes: number) => void): Promise<number>
  /** downloads it into `writer` (its place in the archive), checked against its digest; sources that can */
  fetchInto?(writer: BlobWriter, onData: (bytes: number) => void): Promise<number>
}

export interface PlannedImages {
  /** every blob the images need in the bundle, each once; the documents are in the store already */
  blobs: BlobFile[]
  /** blobs left out because `skip` said so */
  omitted: string[]
  /** configs and layers still to bring into the store, in digest order (the archive's) */
  jobs: BlobJob[]
}

const isImage = (a: LockedArtifact) => a.kind === 'image'

/**
 * index.json's entries for a lock's images: each names its manifest or index by digest and
 * carries the full reference twice, for OCI tools (ref.name) and for containerd.
 */
export function imageIndexEntries(lock: LockFile): Descriptor[] {
  return lock.artifacts.filter(isImage).map((a) => ({
    mediaType: a.mediaType,
    digest: `sha256:${a.sha256}`,
    size: a.size,
    annotations: {[CONTAINERD_NAME]: a.ref ?? a.name, [REF_NAME]: a.ref ?? a.name},
  }))
}

interface BlobTask {
  desc: Descriptor
  source: ImageSource
}

/**
 * Plans the images of the lock: their documents are fetched into the store first (they say what
 * else is needed; an index keeps only the children of the lock's platforms), then every config
 * and layer of every image becomes one job, once however many images share it.
 */
export async function planImages(lock: LockFile, options: PlanImagesOptions): Promise<PlannedImages> {
  const images = lock.artifacts.filter(isImage)
  const blobs = new Map<string, BlobFile>()
  const omitted = new Set<string>()
  const tasks = new Map<string, BlobTask>()
  if (images.length === 0) return {blobs: [], omitted: [], jobs: []}
  const sources = new ImageSources(options.registry)
  const skip = options.skip ?? (() => false)
  const store = options.store

  // A document the store holds (from an earlier build) is read there: a rebuild needs no network.
  const keepDocument = async (source: ImageSource, desc: Descriptor) => {
    const stored = desc.size <= MAX_DOCUMENT ? await store.readSmall(desc.digest, desc.size) : undefined
    const got = stored ? {bytes: stored} : await source.document(desc)
    if (!stored && !(await store.has(desc.digest))) await store.ingest(Readable.from([got.bytes]), {digest: desc.digest, size: desc.size, what: `${source.name} ${desc.digest}`})
    if (skip(desc.digest)) omitted.add(desc.digest)
    else blobs.set(desc.digest, {digest: desc.digest, size: desc.size, path: store.pathOf(desc.digest)})
    return parseImageDocument(got.bytes, desc.mediaType, `${source.name} ${desc.digest}`)
  }
  const need = (source: ImageSource, desc: Descriptor) => {
    if (skip(desc.digest)) {
      omitted.add(desc.digest)
      return
    }
    blobs.set(desc.digest, {digest: desc.digest, size: desc.size, path: store.pathOf(desc.digest)})
    if (!tasks.has(desc.digest)) tasks.set(desc.digest, {desc, source})
  }

  await mapPool(images, 8, async (a) => {
    const source = await sources.open(parseImageReference(a.url))
    const root = await keepDocument(source, {mediaType: a.mediaType, digest: `sha256:${a.sha256}`, size: a.size})
    const manifests = root.kind === 'index' ? [] : [root]
    if (root.kind === 'index') {
      for (const child of selectPlatforms(root, lock.platforms, source.name)) {
        const doc = await keepDocument(source, child)
        if (doc.kind === 'manifest') manifests.push(doc)
      }
    }
    if (root.kind === 'manifest') {
      // A single manifest's platform was read from its config when the lock was made; a lock
      // without it (written by hand or by an older version) has the config read now.
      const recorded = a.platforms?.length === 1 ? parsePlatform(a.platforms[0]) : undefined
      checkConfigPlatform(recorded ?? (await manifestPlatform(source, root.config)), lock.platforms, source.name)
    }
    for (const m of manifests) {
      if (m.kind !== 'manifest') continue
      need(source, m.config)
      for (const layer of m.layers) need(source, layer)
    }
  })

  const jobs = [...tasks.values()]
    .sort((x, y) => (x.desc.digest < y.desc.digest ? -1 : 1))
    .map(({desc, source}) => ({
      digest: desc.digest,
      size: desc.size,
      fetch: (onData: (bytes: number) => void) => source.fetchBlob(store, desc, onData),
      ...(source.fetchBlobInto ? {fetchInto: (writer: BlobWriter, onData: (bytes: number) => void) => source.fetchBlobInto!(writer, desc, onData)} : {}),
    }))
  return {blobs: [...blobs.values()], omitted: [...omitted].sort(), jobs}
}
