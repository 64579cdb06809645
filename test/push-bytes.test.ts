// `ferry bundle push` sends exactly the verified bytes whatever the layer size and the bundle form:
// one-layer images of 1 to 64 MB (random content), pushed from the .ferry.tar and from the parts
// on a stick folder into fresh loopback docker-registries, each layer then fetched back and hashed;
// also through a registry that reads slowly, from a reader that reuses its buffers, and from an
// archive whose blob no longer matches its digest.
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {BlobPusher} from '../src/bundle/push-blobs.js'
import type {BundleInput} from '../src/bundle/input.js'
import {RegistryClient} from '../src/sources/oci/registry-client.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {registryDigest, startProxy, startRegistry, type Registry} from './helpers/registry.js'

const MB = 1_000_000
/** layer payload sizes; odd byte counts so no blob lines up with a read buffer */
const SIZES = [1, 8, 9, 17, 33, 64]

interface Made {
  tag: string
  layer: string
  manifest: string
}

const ctx = {} as {dir: string; bundle: string; pub: string; stick: string; images: Made[]; registries: Registry[]}
const test = suite('push-bytes')

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** A one-file uncompressed tar: the layer of an image. */
function tarOf(name: string, payload: Buffer): Buffer {
  const header = Buffer.alloc(512)
  header.write(name, 0)
  header.write('0000644\0', 100)
  header.write('0000000\0', 108)
  header.write('0000000\0', 116)
  header.write(`${payload.length.toString(8).padStart(11, '0')}\0`, 124)
  header.write('00000000000\0', 136)
  header.write('        ', 148)
  header.write('0', 156)
  header.write('ustar\u000000', 257)
  let sum = 0
  for (const b of header) sum += b
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
  const pad = Buffer.alloc((512 - (payload.length % 512)) % 512)
  return Buffer.concat([header, payload, pad, Buffer.alloc(1024)])
}

/** An OCI layout with one single-layer image per size, tagged s<MB>. */
async function makeLayout(dir: string): Promise<Made[]> {
  const blobs = join(dir, 'blobs', 'sha256')
  await mkdir(blobs, {recursive: true})
  const put = async (b: Buffer) => {
    const d = sha256(b)
    await writeFile(join(blobs, d.slice(7)), b)
    return {digest: d, size: b.length}
  }
  const made: Made[] = []
  const index = []
  for (const mb of SIZES) {
    const tar = tarOf(`payload-${mb}.bin`, randomBytes(mb * MB + 4321))
    const layer = await put(tar)
    const config = await put(Buffer.from(JSON.stringify({architecture: 'amd64', os: 'linux', rootfs: {type: 'layers', diff_ids: [layer.digest]}})))
    const manifest = await put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
          layers: [{mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer}],
        }),
      ),
    )
    const tag = `s${mb}`
    index.push({mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: {'org.opencontainers.image.ref.name': tag}})
    made.push({tag, layer: layer.digest, manifest: manifest.digest})
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  await writeFile(join(dir, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: index}))
  return made
}

/** GETs a blob from the registry and returns the sha256 of what came back. */
async function fetchedDigest(host: string, repo: string, digest: string): Promise<string> {
  const res = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`)
  assert.is(res.status, 200, `${repo} ${digest}`)
  return sha256(Buffer.from(await res.arrayBuffer()))
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-push-sizes-'))
  ctx.registries = []
  ctx.images = await makeLayout(join(ctx.dir, 'layout'))
  const pair = await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))
  ctx.pub = pair.public
  const m = join(ctx.dir, 'site.yaml')
  const refs = ctx.images.map((i) => `oci:layout:${i.tag}`).join(', ')
  await writeFile(m, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: sizes, version: 1.0.0}\nspec:\n  images: [${refs}]\n`)
  const r = await ferry(['bundle', 'build', m, '--key', pair.private, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  ctx.bundle = r.json!.result.path
  // the stick: several parts, so blobs also straddle part boundaries
  ctx.stick = join(ctx.dir, 'stick')
  await mkdir(ctx.stick)
  const w = await ferry(['usb', 'write', ctx.bundle, ctx.stick, '--part-size', '50MiB', '--json'])
  assert.is(w.code, 0, w.stdout + w.stderr)
  await rm(join(ctx.dir, 'store'), {recursive: true, force: true})
})

test.after(async () => {
  for (const r of ctx.registries ?? []) await r.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

async function pushAndCheck(from: string, name: string): Promise<void> {
  const site = await startRegistry(join(ctx.dir, `site-${name}`))
  ctx.registries.push(site)
  const r = await ferry(['bundle', 'push', from, `${site.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(r.code, 0, `push from ${name}: ${r.stdout}${r.stderr}`)
  assert.is(r.json!.result.blobs.uploaded, ctx.images.length * 2)
  for (const image of ctx.images) {
    const repo = `edge/library/${image.tag}`
    assert.is(await fetchedDigest(site.host, repo, image.layer), image.layer, `${image.tag}: the registry holds other bytes for the layer`)
    assert.is(await registryDigest(`${site.host}/${repo}:latest`), image.manifest, `${image.tag}: manifest digest`)
  }
}

test('push from the .ferry.tar: every layer from 1 to 64 MB arrives intact', async () => {
  await pushAndCheck(ctx.bundle, 'tar')
})

test('push from the stick folder (parts): every layer arrives intact', async () => {
  await pushAndCheck(ctx.stick, 'stick')
})

/** An archive read as readFileChunks reads a file: one buffer, refilled each time the next chunk is asked for. */
function reusingInput(label: string, archive: Buffer, chunk: number): BundleInput {
  return {
    label,
    size: archive.length,
    open: async function* () {
      const buffer = Buffer.alloc(chunk)
      for (let at = 0; at < archive.length; at += chunk) yield buffer.subarray(0, archive.copy(buffer, 0, at, at + chunk))
    },
  }
}

const tally = () => ({blobs: {uploaded: 0, mounted: 0, present: 0}, bytes: 0})

test('a slow registry gets the verified bytes from a reader that reuses its buffers', async () => {
  const site = await startRegistry(join(ctx.dir, 'site-slow'))
  ctx.registries.push(site)
  const slow = await startProxy(site.host, {slowUploads: 1})
  try {
    // larger than what loopback sockets buffer, so the client's socket backs up
    const blob = randomBytes(24 * MB + 123)
    const digest = sha256(blob)
    const input = reusingInput('reusing', tarOf(`blobs/sha256/${digest.slice(7)}`, blob), 8 << 10)
    await new BlobPusher(new RegistryClient(slow.host, {retries: 0}), tally()).sendFrom(input, new Map([[digest, ['t/blob']]]))
    assert.is(await fetchedDigest(site.host, 't/blob', digest), digest)
  } finally {
    await slow.close()
  }
})

test('a blob that changed since verification is not completed in the registry (exit 3)', async () => {
  const site = await startRegistry(join(ctx.dir, 'site-changed'))
  ctx.registries.push(site)
  const blob = randomBytes(5 * MB)
  const digest = sha256(blob)
  blob[blob.length - 1] ^= 1
  const input = reusingInput('changed.ferry.tar', tarOf(`blobs/sha256/${digest.slice(7)}`, blob), 1 << 20)
  const err = await new BlobPusher(new RegistryClient(site.host, {retries: 0}), tally()).sendFrom(input, new Map([[digest, ['t/blob']]])).then(
    () => undefined,
    (e: {code?: string; exit?: number; message: string}) => e,
  )
  assert.is(err?.code, 'BLOB_CHANGED', String(err?.message))
  assert.is(err?.exit, 3)
  assert.match(err!.message, /changed\.ferry\.tar/)
  const head = await fetch(`http://${site.host}/v2/t/blob/blobs/${digest}`, {method: 'HEAD'})
  assert.is(head.status, 404)
})

test.run()
