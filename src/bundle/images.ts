import {readFile} from 'node:fs/promises'
import {Readable} from 'node:stream'
import type {LockedArtifact, LockFile} from '../manifest/lock-format.js'
import {mapPool} from '../sources/pool.js'
import {matchesPlatform, parseImageDocument, platformString, selectPlatforms, type Descriptor} from '../sources/oci/document.js'
import {ImageSources, type ImageSource} from '../sources/oci/image-source.js'
import {parseImageReference} from '../sources/oci/reference.js'
import type {RegistryOptions} from '../sources/oci/registry-client.js'
import type {BlobStore} from '../store/blob-store.js'
import {usageError} from '../ui/errors.js'
import type {ProgressListener} from '../ui/progress.js'
import type {BlobFile} from './write.js'

export const REF_NAME = 'org.opencontainers.image.ref.name'
export const CONTAINERD_NAME = 'io.containerd.image.name'

export interface CollectImagesOptions {
  store: BlobStore
  registry?: RegistryOptions
  /** blob downloads at once, across all images; default 8 */
  concurrency?: number
  /** blobs not to fetch or carry (a delta's base has them) */
  skip?: (digest: string) => boolean
  onProgress?: ProgressListener
}

export interface CollectedImages {
  /** every blob the images need in the bundle, each once */
  blobs: BlobFile[]
  /** blobs left out because `skip` said so */
  omitted: string[]
  /** bytes downloaded */
  fetched: number
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
 * An image that is a single manifest (no index) runs on one platform, named in its config: it
 * must be one the bundle is built for, or the device would get an image it cannot run.
 */
async function checkSinglePlatform(source: ImageSource, config: Descriptor, platforms: string[], store: BlobStore): Promise<void> {
  if (config.size > 4 << 20) return
  await source.fetchBlob(store, config)
  let found: {os?: string; architecture?: string; variant?: string}
  try {
    found = JSON.parse(await readFile(store.pathOf(config.digest), 'utf8'))
  } catch {
    return
  }
  if (!found.os || !found.architecture) return
  const platform = {os: found.os, architecture: found.architecture, ...(found.variant ? {variant: found.variant} : {})}
  if (!platforms.some((want) => matchesPlatform(want, platform))) {
    throw usageError('PLATFORM_NOT_FOUND', `${source.name} is a single-platform image for ${platformString(platform)}; the bundle is for ${platforms.join(', ')} (change spec.platforms or the image)`)
  }
}

/**
 * Fetches every image of the lock into the store. Documents first (they say what else is
 * needed; an index keeps only the children of the lock's platforms), then all configs and
 * layers of all images through one bounded pool: a layer shared by several images is fetched
 * once, one already in the store not at all, and each is hashed as it streams in.
 */
export async function collectImages(lock: LockFile, options: CollectImagesOptions): Promise<CollectedImages> {
  const images = lock.artifacts.filter(isImage)
  const blobs = new Map<string, BlobFile>()
  const omitted = new Set<string>()
  const tasks = new Map<string, BlobTask>()
  if (images.length === 0) return {blobs: [], omitted: [], fetched: 0}
  const sources = new ImageSources(options.registry)
  const skip = options.skip ?? (() => false)
  const store = options.store

  const keepDocument = async (source: ImageSource, desc: Descriptor) => {
    const got = await source.document(desc)
    if (!(await store.has(desc.digest))) await store.ingest(Readable.from([got.bytes]), {digest: desc.digest, size: desc.size, what: `${source.name} ${desc.digest}`})
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
    if (root.kind === 'manifest') await checkSinglePlatform(source, root.config, lock.platforms, store)
    for (const m of manifests) {
      if (m.kind !== 'manifest') continue
      need(source, m.config)
      for (const layer of m.layers) need(source, layer)
    }
  })

  // In digest order: the order the archive is written in.
  const queue = [...tasks.values()].sort((x, y) => (x.desc.digest < y.desc.digest ? -1 : 1))
  const total = queue.reduce((n, t) => n + t.desc.size, 0)
  let done = 0
  let lastReport = 0
  let fetched = 0
  await mapPool(queue, options.concurrency ?? 8, async ({desc, source}) => {
    const got = await source.fetchBlob(store, desc, (n) => {
      done += n
      if (options.onProgress && done - lastReport >= 1 << 20) {
        lastReport = done
        options.onProgress({phase: 'fetch', item: 'images', done, total})
      }
    })
    fetched += got
  })
  options.onProgress?.({phase: 'fetch', item: 'images', done: total, total})
  return {blobs: [...blobs.values()], omitted: [...omitted].sort(), fetched}
}
