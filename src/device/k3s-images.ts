import {randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {access, link, mkdir, rename, rm} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {cannotLink, fsyncFile, syncDir} from '../store/atomic-file.js'
import {asLocalIoError} from '../errors.js'
import {deviceBlobPath, ociArchive} from './oci-archive.js'
import type {SlotManifest} from './state-format.js'

/** The archive K3s imports at start holding a release's own container images. */
export const FERRY_IMAGES_ARCHIVE = 'ferry-images.tar'

/** The airgap image archives a release carries (K3s's `k3s-airgap-images-<arch>.tar.zst`). */
export function airgapArchives(release: SlotManifest): SlotManifest['artifacts'] {
  return release.artifacts.filter((a) => a.kind === 'k3s' && a.dest !== undefined && a.dest.startsWith('images/'))
}

const exists = (path: string) => access(path).then(() => true, () => false)

/** Puts `source` at `target` as a whole file, by hard link when possible, else by copy; temp + rename. */
async function placeFile(source: string, target: string): Promise<void> {
  const temp = `${target}.${randomBytes(4).toString('hex')}.tmp`
  try {
    try {
      await link(source, temp)
    } catch (err) {
      if (!cannotLink(err)) throw err
      await pipeline(createReadStream(source), createWriteStream(temp, {flags: 'wx'}))
      await fsyncFile(temp)
    }
    await rename(temp, target)
  } catch (err) {
    await rm(temp, {force: true})
    throw err
  }
}

/**
 * Places a release's images where K3s imports them when it starts (its agent/images folder): the
 * airgap archives by their upstream names, and the release's own images as one OCI archive. The
 * names are fixed, so placing another release replaces these files atomically; images K3s already
 * imported stay in its containerd, which is what a rollback relies on.
 */
export async function placeK3sImages(imagesDir: string, slotDir: string, blobsDir: string, release: SlotManifest): Promise<string[]> {
  const placed: string[] = []
  try {
    await mkdir(imagesDir, {recursive: true})
    for (const archive of airgapArchives(release)) {
      const inSlot = join(slotDir, archive.dest as string)
      const source = (await exists(inSlot)) ? inSlot : deviceBlobPath(blobsDir, archive.digest)
      const target = join(imagesDir, basename(archive.dest as string))
      await placeFile(source, target)
      placed.push(target)
    }
    const target = join(imagesDir, FERRY_IMAGES_ARCHIVE)
    if (release.images.length > 0) {
      const temp = `${target}.${randomBytes(4).toString('hex')}.tmp`
      try {
        await pipeline(Readable.from(ociArchive(blobsDir, release.images)), createWriteStream(temp, {flags: 'wx'}))
        await fsyncFile(temp)
        await rename(temp, target)
      } catch (err) {
        await rm(temp, {force: true})
        throw err
      }
      placed.push(target)
    } else {
      await rm(target, {force: true})
    }
    await syncDir(imagesDir)
  } catch (err) {
    throw asLocalIoError(err, `placing images in ${imagesDir}`)
  }
  return placed
}
