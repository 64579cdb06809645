import {createReadStream} from 'node:fs'
import {access, link, readdir, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {cannotLink, mkdirDurable, syncDir, tempPathFor, unlinkDurable, writeAll, writeAtomicWith} from '../store/atomic-file.js'
import {asLocalIoError} from '../errors.js'
import {deviceBlobPath, ociArchive} from './oci-archive.js'
import type {SlotManifest} from './state-format.js'

/** The archive K3s imports at start holding a release's own container images. */
export const FERRY_IMAGES_ARCHIVE = 'ferry-images.tar'

/**
 * Where archives are written before they are renamed into K3s's images folder: beside it (the same file
 * system, so the rename is atomic) but outside it, since K3s imports every file it finds there at start.
 */
export const stagingDirFor = (imagesDir: string) => join(dirname(imagesDir), '.ferry-staging')

/** The airgap image archives a release carries (K3s's `k3s-airgap-images-<arch>.tar.zst`). */
export function airgapArchives(release: SlotManifest): SlotManifest['artifacts'] {
  return release.artifacts.filter((a) => a.kind === 'k3s' && a.dest !== undefined && a.dest.startsWith('images/'))
}

const exists = (path: string) => access(path).then(() => true, () => false)

async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)])
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino
}

/**
 * Puts `source` at `target` as a whole file: a hard link made in the staging folder when possible, else a
 * copy written and fsynced there, then renamed over `target`. A target that is already this very file stays.
 */
async function placeFile(source: string, target: string, staging: string): Promise<void> {
  if (await sameFile(source, target)) return
  const temp = tempPathFor(target, staging)
  try {
    await link(source, temp)
  } catch (err) {
    await rm(temp, {force: true})
    if (!cannotLink(err)) throw err
    await writeAtomicWith(target, (fh) => writeAll(fh, createReadStream(source, {highWaterMark: 1 << 20})), {stagingDir: staging})
    return
  }
  try {
    await rename(temp, target)
  } finally {
    await rm(temp, {force: true})
  }
}

/**
 * Places a release's images where K3s imports them when it starts (its agent/images folder): the
 * airgap archives by their upstream names, and the release's own images as one OCI archive. The
 * names are fixed, so placing another release replaces these files atomically; images K3s already
 * imported stay in its containerd, which is what a rollback relies on. Nothing but complete archives
 * ever appears in that folder: they are written in the staging folder and renamed in.
 */
export async function placeK3sImages(imagesDir: string, slotDir: string, blobsDir: string, release: SlotManifest): Promise<string[]> {
  const placed: string[] = []
  const staging = stagingDirFor(imagesDir)
  try {
    await mkdirDurable(imagesDir)
    await mkdirDurable(staging)
    // what a killed placement left there: never complete, never scanned
    for (const name of await readdir(staging)) await rm(join(staging, name), {force: true})
    for (const archive of airgapArchives(release)) {
      const inSlot = join(slotDir, archive.dest as string)
      const source = (await exists(inSlot)) ? inSlot : deviceBlobPath(blobsDir, archive.digest)
      const target = join(imagesDir, basename(archive.dest as string))
      await placeFile(source, target, staging)
      placed.push(target)
    }
    const target = join(imagesDir, FERRY_IMAGES_ARCHIVE)
    if (release.images.length > 0) {
      await writeAtomicWith(target, (fh) => writeAll(fh, ociArchive(blobsDir, release.images)), {stagingDir: staging})
      placed.push(target)
    } else {
      await unlinkDurable(target)
    }
    await syncDir(imagesDir)
  } catch (err) {
    throw asLocalIoError(err, `placing images in ${imagesDir}`)
  }
  return placed
}
