import {readdir, stat, unlink} from 'node:fs/promises'
import {join} from 'node:path'
import {syncDir} from '../store/atomic-file.js'
import type {DevicePaths, SlotName} from './paths.js'
import {slotImageGraph} from './oci-archive.js'
import {readSlotManifest} from './slot-manifest.js'

export interface GcResult {
  /** blobs removed */
  removed: number
  /** bytes freed */
  freed: number
  /** blobs kept because a slot needs them */
  kept: number
  /** why the collection stopped, when it did */
  error?: string
}

/** Every blob digest a slot's release needs: its artifacts and the whole graph of its images. */
async function referencedBy(paths: DevicePaths, slot: SlotName): Promise<Set<string>> {
  const release = await readSlotManifest(paths, slot)
  const out = new Set<string>()
  if (!release) return out
  for (const artifact of release.artifacts) {
    out.add(artifact.digest)
    // a later delta rebuilds from this blob by its index
    if (artifact.chunks) out.add(artifact.chunks)
  }
  for (const digest of slotImageGraph(paths.blobs, release.images).blobs.keys()) out.add(digest)
  return out
}

/**
 * Removes the blobs of the device store that neither slot references: what is left of the release
 * the last import overwrote. Runs under the apply lock, after a commit. A slot whose release.json
 * cannot be read makes the collection stop before deleting anything.
 */
export async function collectGarbage(paths: DevicePaths): Promise<GcResult> {
  const keep = new Set<string>()
  for (const slot of ['a', 'b'] as const) for (const digest of await referencedBy(paths, slot)) keep.add(digest)
  const dir = join(paths.blobs, 'sha256')
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {removed: 0, freed: 0, kept: 0}
    throw err
  }
  const result: GcResult = {removed: 0, freed: 0, kept: 0}
  for (const name of names) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    if (keep.has(`sha256:${name}`)) {
      result.kept++
      continue
    }
    const file = join(dir, name)
    const {size} = await stat(file)
    await unlink(file)
    result.removed++
    result.freed += size
  }
  // the removals reach the disk before the command reports them
  if (result.removed > 0) await syncDir(dir)
  return result
}
