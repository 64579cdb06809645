import {readFile} from 'node:fs/promises'
import {rebuildArtifact, rebuiltArtifacts} from '../bundle/chunk-rebuild.js'
import type {BundleManifest} from '../bundle/format.js'
import {openFileSource} from '../chunks/sources.js'
import type {ProgressListener} from '../progress.js'
import type {DeviceBlobs} from './device-blobs.js'
import type {DevicePaths} from './paths.js'
import {checkpoint} from './testing.js'

/**
 * Rebuilds a verified delta's chunked artifacts into the device store: each from its pack (stored
 * by the import) and the base's copy and index already in the store, every chunk and the whole
 * file checked before the blob lands (temp file in tmp/, fsync, rename). A base copy that is
 * missing or corrupt is exit 3 naming the artifact; nothing is staged then.
 */
export async function rebuildIntoStore(paths: DevicePaths, blobs: DeviceBlobs, manifest: BundleManifest, onProgress?: ProgressListener): Promise<number> {
  let count = 0
  for (const a of rebuiltArtifacts(manifest)) {
    if (blobs.has(a.digest)) continue
    await rebuildArtifact(
      a,
      {
        deltaBlob: (digest, size) => openFileSource(blobs.pathOf(digest), 0, size),
        baseArtifact: async (digest) => (blobs.has(digest) ? openFileSource(blobs.pathOf(digest)) : undefined),
        baseIndex: (digest) => readFile(blobs.pathOf(digest)).catch(() => undefined),
      },
      {target: blobs.pathOf(a.digest), tempDir: paths.tmp, onProgress, onSlab: () => checkpoint('verifying:rebuild:slab')},
    )
    count++
  }
  return count
}
