import {createHash, randomBytes} from 'node:crypto'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gzipSync} from 'node:zlib'
import {END_OF_ARCHIVE, fileHeader, padding} from '../bundle/tar-writer.js'

/** The names the demo layout gives its images (manifests/demo.yaml asks for them). */
export const DEMO_IMAGES = ['demo.example.com/site/web:1.0', 'demo.example.com/site/api:1.0']

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A one-file layer: a tar holding `name`, gzipped; returns the blob and its uncompressed digest. */
function layer(name: string, bytes: number): {blob: Buffer; diffId: string} {
  const data = randomBytes(bytes)
  const tar = Buffer.concat([fileHeader(name, data.length), data, padding(data.length), END_OF_ARCHIVE])
  return {blob: gzipSync(tar, {level: 1}), diffId: `sha256:${sha(tar)}`}
}

/**
 * Writes a small OCI image layout with two images sharing a base layer, as a CI job would
 * leave one (`oci:DIR:NAME`), so the demo bundles images with nothing but Node.
 */
export async function makeDemoImages(dir: string, layerBytes = 256 << 10): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256')
  await mkdir(blobs, {recursive: true})
  const put = async (bytes: Buffer, mediaType: string) => {
    const hex = sha(bytes)
    await writeFile(join(blobs, hex), bytes)
    return {mediaType, digest: `sha256:${hex}`, size: bytes.length}
  }
  const base = layer('base.txt', layerBytes)
  const manifests = []
  for (const name of DEMO_IMAGES) {
    const own = layer(`${name.split('/').pop()!.split(':')[0]}.bin`, layerBytes)
    const layers = [base, own]
    const config = Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux', config: {Cmd: ['/bin/true']}, rootfs: {type: 'layers', diff_ids: layers.map((l) => l.diffId)}}))
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: await put(config, 'application/vnd.oci.image.config.v1+json'),
        layers: await Promise.all(layers.map((l) => put(l.blob, 'application/vnd.oci.image.layer.v1.tar+gzip'))),
      }),
    )
    manifests.push({...(await put(manifest, 'application/vnd.oci.image.manifest.v1+json')), annotations: {'org.opencontainers.image.ref.name': name}})
  }
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  await writeFile(join(dir, 'index.json'), JSON.stringify({schemaVersion: 2, manifests}))
  return dir
}

/**
 * Rebuilds one image of the layout as CI would after a code change: a new top layer on the same base,
 * a new config and manifest under the same name (the tag moves). Returns the image's name.
 */
export async function rebuildDemoImage(dir: string, name: string, layerBytes = 256 << 10): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256')
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {schemaVersion: number; manifests: Array<{digest: string; annotations?: Record<string, string>}>}
  const at = index.manifests.findIndex((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name)
  if (at < 0) throw new Error(`${dir} has no image ${name}`)
  const old = JSON.parse(await readFile(join(blobs, index.manifests[at].digest.slice('sha256:'.length)), 'utf8'))
  const oldConfig = JSON.parse(await readFile(join(blobs, old.config.digest.slice('sha256:'.length)), 'utf8'))
  const own = layer(`${name.split('/').pop()!.split(':')[0]}.bin`, layerBytes)
  const put = async (bytes: Buffer, mediaType: string) => {
    const hex = sha(bytes)
    await writeFile(join(blobs, hex), bytes)
    return {mediaType, digest: `sha256:${hex}`, size: bytes.length}
  }
  const config = Buffer.from(JSON.stringify({...oldConfig, rootfs: {type: 'layers', diff_ids: [oldConfig.rootfs.diff_ids[0], own.diffId]}}))
  const manifest = Buffer.from(
    JSON.stringify({...old, config: await put(config, old.config.mediaType), layers: [old.layers[0], await put(own.blob, 'application/vnd.oci.image.layer.v1.tar+gzip')]}),
  )
  index.manifests[at] = {...(await put(manifest, 'application/vnd.oci.image.manifest.v1+json')), annotations: {'org.opencontainers.image.ref.name': name}}
  await writeFile(join(dir, 'index.json'), JSON.stringify(index))
  return name
}
