import {createReadStream, existsSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {imageClosure, type Descriptor} from '../bundle/oci-closure.js'
import {ENTRY, OCI_LAYOUT_BYTES} from '../bundle/format.js'
import {END_OF_ARCHIVE, fileHeader, padding} from '../bundle/tar-writer.js'
import {digestHex} from '../store/hashing.js'
import {integrityError} from '../errors.js'
import type {SlotManifest} from './state-format.js'

/** Annotations containerd and other OCI tools read an image's full name from. */
export const IMAGE_NAME_ANNOTATION = 'io.containerd.image.name'
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name'

const DEFAULT_MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'

/** Where a blob of the device store lives: <base>/blobs/sha256/<hex>. */
export function deviceBlobPath(blobsDir: string, digest: string): string {
  return join(blobsDir, 'sha256', digestHex(digest))
}

function blobSize(blobsDir: string, digest: string, what: string): number {
  try {
    return statSync(deviceBlobPath(blobsDir, digest)).size
  } catch {
    throw integrityError('MISSING_BLOB', `${what}: blob ${digest} is missing from the device store; import the bundle again`)
  }
}

/** The index descriptors naming a slot's images, and every blob their graph needs (digest → size). */
export function slotImageGraph(blobsDir: string, images: SlotManifest['images']): {index: Descriptor[]; blobs: Map<string, number>} {
  const index: Descriptor[] = images.map((image) => ({
    mediaType: image.mediaType ?? DEFAULT_MANIFEST_TYPE,
    digest: image.digest,
    size: blobSize(blobsDir, image.digest, image.ref),
    annotations: {[IMAGE_NAME_ANNOTATION]: image.ref, [REF_NAME_ANNOTATION]: image.ref},
  }))
  // Manifests and indexes are a few KiB: reading them whole is fine; layers are only streamed.
  const content = (digest: string) => {
    const path = deviceBlobPath(blobsDir, digest)
    return existsSync(path) ? readFileSync(path) : undefined
  }
  const present = (digest: string) => existsSync(deviceBlobPath(blobsDir, digest))
  const blobs = imageClosure(index, content, () => false, present)
  return {index, blobs}
}

/**
 * An OCI image layout as one tar stream (oci-layout, index.json, blobs), made on the fly from the
 * device blob store: what `ctr images import -` and K3s's airgap folder take. Constant memory.
 */
export async function* ociArchive(blobsDir: string, images: SlotManifest['images']): AsyncGenerator<Buffer> {
  const {index, blobs} = slotImageGraph(blobsDir, images)
  const indexJson = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index}))
  const small: Array<[string, Buffer]> = [
    [ENTRY.layout, Buffer.from(OCI_LAYOUT_BYTES)],
    [ENTRY.index, indexJson],
  ]
  for (const [name, bytes] of small) {
    yield fileHeader(name, bytes.length)
    yield bytes
    yield padding(bytes.length)
  }
  for (const [digest, size] of [...blobs.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    yield fileHeader(ENTRY.blobPrefix + digestHex(digest), size)
    let copied = 0
    for await (const chunk of createReadStream(deviceBlobPath(blobsDir, digest), {highWaterMark: 1 << 20}) as AsyncIterable<Buffer>) {
      copied += chunk.length
      if (copied > size) break
      yield chunk
    }
    if (copied !== size) throw integrityError('STORE_CHANGED', `blob ${digest} in the device store is ${copied} bytes, expected ${size}; import the bundle again`)
    yield padding(size)
  }
  yield END_OF_ARCHIVE
}
