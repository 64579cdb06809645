import {copyFile, chmod, link, rm} from 'node:fs/promises'
import {dirname, join, normalize, sep} from 'node:path'
import type {BundleManifest} from '../bundle/format.js'
import {cannotLink, fsyncFile, mkdirDurable, syncDirs, writeFileAtomic} from '../store/atomic-file.js'
import {asLocalIoError, integrityError} from '../errors.js'
import type {DeviceBlobs} from './device-blobs.js'
import {type DevicePaths, type SlotName, slotDir} from './paths.js'
import type {SlotManifest} from './state-format.js'
import {checkpoint} from './testing.js'

export interface StageInput {
  manifest: BundleManifest
  bundleJson: Buffer
  signature: Buffer
  /** sha256 of bundle.json */
  digest: string
  /** the device's platform: artifacts built for another one are left out */
  platform: string
}

/** Names inside a slot that belong to Ferry itself, never an artifact's destination. */
const RESERVED = new Set(['release.json', 'bundle.json', 'bundle.json.asc'])

/** An artifact's `dest` as a path inside the slot; anything escaping it or clashing with Ferry's files is refused. */
function slotPath(root: string, dest: string, artifact: string): string {
  const clean = normalize(dest)
  if (dest.startsWith('/') || clean.startsWith('..') || clean.split(sep).includes('..') || RESERVED.has(clean) || clean === '.') {
    throw integrityError('BAD_DEST', `artifact ${artifact} wants to be installed at "${dest}", outside its slot or over Ferry's own files`)
  }
  return join(root, clean)
}

/**
 * Binaries are copied (they get mode 0755, and a hard link would change the stored blob's mode too); the VM
 * image and K3s airgap archives are hard-linked from the blob store when it shares the filesystem (no second
 * copy of gigabytes), copied otherwise; other files are copied.
 */
async function install(blobPath: string, target: string, dest: string): Promise<void> {
  await mkdirDurable(dirname(target))
  const linkable = dest.startsWith('vm/') || dest.startsWith('images/')
  if (linkable) {
    try {
      await link(blobPath, target)
      return
    } catch (err) {
      if (!cannotLink(err)) throw err
    }
  }
  await copyFile(blobPath, target)
  if (dest.startsWith('bin/')) await chmod(target, 0o755)
  await fsyncFile(target)
}

/**
 * Fills a slot with a verified release: clears it, installs each artifact of this platform at its `dest`,
 * keeps bundle.json and its signature, and writes release.json LAST (atomically), so a slot without
 * release.json is never taken for a complete one.
 */
export async function stageSlot(paths: DevicePaths, slot: SlotName, blobs: DeviceBlobs, input: StageInput): Promise<SlotManifest> {
  const root = slotDir(paths, slot)
  const {manifest} = input
  try {
    await rm(root, {recursive: true, force: true})
    // the removal and the fresh folder are made durable together (an fsync of slots/)
    await mkdirDurable(root)
    const artifacts: SlotManifest['artifacts'] = []
    const images: SlotManifest['images'] = []
    const dirs = new Set<string>()
    for (const a of manifest.artifacts) {
      if (a.platform && a.platform !== input.platform) continue
      if (a.kind === 'image') {
        images.push({ref: a.ref ?? a.name, digest: a.digest, mediaType: a.mediaType})
      } else if (a.dest) {
        const target = slotPath(root, a.dest, a.name)
        await install(blobs.pathOf(a.digest), target, a.dest)
        dirs.add(dirname(target))
      }
      artifacts.push({name: a.name, kind: a.kind, digest: a.digest, size: a.size, ...(a.dest ? {dest: a.dest} : {}), ...(a.ref ? {ref: a.ref} : {}), ...(a.chunks ? {chunks: a.chunks.index} : {})})
    }
    // every installed file's entry is on the disk before anything in the slot describes it
    await syncDirs(dirs)
    await writeFileAtomic(join(root, 'bundle.json'), input.bundleJson)
    await writeFileAtomic(join(root, 'bundle.json.asc'), input.signature)
    const release: SlotManifest = {
      schema: 'ferry.slot/v1',
      name: manifest.name,
      version: manifest.version,
      digest: input.digest,
      platforms: manifest.platforms,
      health: manifest.health,
      artifacts,
      images,
      importedAt: new Date().toISOString(),
      platform: input.platform,
      ...(manifest.rotation ? {rotation: manifest.rotation} : {}),
    }
    checkpoint('verifying:stage:files')
    await writeFileAtomic(join(root, 'release.json'), JSON.stringify(release, null, 2) + '\n')
    return release
  } catch (err) {
    // Nothing half-staged is left to look like a release.
    await rm(root, {recursive: true, force: true}).catch(() => undefined)
    throw asLocalIoError(err, `staging slot ${slot} (${root})`)
  }
}
