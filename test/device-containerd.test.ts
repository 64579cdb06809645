// Apply with a real containerd (started here, own root, state and socket): a release's images are imported
// into the k8s.io namespace under their full names, and a rollback leaves the old release's images there.
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readlink, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {gzipSync} from 'node:zlib'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {buildBundle} from '../src/bundle/build.js'
import {hostPlatform} from '../src/device/platform.js'
import {isBad} from '../src/device/trust-store.js'
import {HealthCheck, type LockedArtifact, type LockFile} from '../src/manifest/lock-format.js'
import {BlobStore} from '../src/store/blob-store.js'
import {fileSigner} from '../src/trust/sign.js'
import {ferry} from './helpers/cli.js'
import {type Containerd, startContainerd} from './helpers/containerd.js'
import {makeDevice, makeKey, type TestKey} from './helpers/device.js'
import {type K3sMode, nodesReady, standInArtifacts, writeDeviceConfig} from './helpers/stand-ins.js'

const test = suite('device apply with containerd')
let dir = ''
let key: TestKey
let containerd: Containerd
let layout = ''

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

/** A one-file tar (ustar, made by hand: a few lines, no tool needed). */
function tarOf(name: string, body: Buffer): Buffer {
  const header = Buffer.alloc(512)
  header.write(name, 0)
  header.write('0000644\0', 100)
  header.write('0000000\0', 108)
  header.write('0000000\0', 116)
  header.write(body.length.toString(8).padStart(11, '0') + '\0', 124)
  header.write('00000000000\0', 136)
  header.write('0', 156)
  header.write('ustar\0' + '00', 257)
  header.write('        ', 148)
  let sum = 0
  for (const b of header) sum += b
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512)
  return Buffer.concat([header, body, pad, Buffer.alloc(1024)])
}

/** Adds a tiny image (one layer) named `tag` to the OCI layout folder; returns its manifest digest and size. */
async function addImage(tag: string, index: Array<Record<string, unknown>>): Promise<{digest: string; size: number}> {
  const put = async (bytes: Buffer) => {
    await writeFile(join(layout, 'blobs', 'sha256', sha(bytes)), bytes)
    return {digest: `sha256:${sha(bytes)}`, size: bytes.length}
  }
  const tar = tarOf('hello.txt', Buffer.from(`hello from ${tag}\n`))
  const layer = await put(gzipSync(tar))
  const [os, architecture] = hostPlatform().split('/')
  const config = await put(Buffer.from(JSON.stringify({architecture, os, rootfs: {type: 'layers', diff_ids: [`sha256:${sha(tar)}`]}, config: {}})))
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
        layers: [{mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer}],
      }),
    ),
  )
  index.push({mediaType: MANIFEST, ...manifest, annotations: {'org.opencontainers.image.ref.name': tag}})
  await writeFile(join(layout, 'index.json'), JSON.stringify({schemaVersion: 2, manifests: index}))
  return manifest
}

const images: Record<string, {digest: string; size: number}> = {}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-ctrd-'))
  key = await makeKey(dir, 'release')
  containerd = await startContainerd(join(dir, 'containerd'))
  layout = join(dir, 'layout')
  await mkdir(join(layout, 'blobs', 'sha256'), {recursive: true})
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  const index: Array<Record<string, unknown>> = []
  for (const tag of ['1.0', '2.0']) images[tag] = await addImage(tag, index)
})
test.after(async () => {
  await containerd?.stop()
  await rm(dir, {recursive: true, force: true})
})

/** A signed bundle carrying the stand-in k3s and the image registry.example.com/edge/app:<tag>, built by the real build. */
async function bundleWithImage(version: string, mode: K3sMode, tag: string): Promise<string> {
  const store = new BlobStore(join(dir, 'store'))
  const artifacts: LockedArtifact[] = []
  for (const a of standInArtifacts(version, mode)) {
    const got = await store.ingest([Buffer.from(a.content as string)], {what: a.name})
    artifacts.push({name: a.name, kind: a.kind ?? 'file', url: `http://fixture.invalid/${a.name}`, sha256: got.digest.slice(7), size: got.size, mediaType: 'application/octet-stream', dest: a.dest, upstream: {verifiedBy: 'sha256'}})
  }
  const ref = `registry.example.com/edge/app:${tag}`
  artifacts.push({name: `images/${ref}`, kind: 'image', url: `oci:${layout}:${tag}`, sha256: images[tag].digest.slice(7), size: images[tag].size, mediaType: MANIFEST, ref, upstream: {verifiedBy: 'registry'}})
  const created = new Date(Date.now() - 3600_000)
  const lock: LockFile = {
    schema: 'ferry.lock/v1',
    name: 'edge-site',
    version,
    resolved: created.toISOString(),
    expires: new Date(created.getTime() + 86_400_000).toISOString(),
    platforms: [hostPlatform()],
    health: [HealthCheck.parse(nodesReady(10))],
    artifacts,
  }
  const built = await buildBundle(lock, {store, signers: [await fileSigner(key.priv)], outDir: join(dir, 'bundles', version), now: created})
  return built.path
}

const listed = async (namespace = 'k8s.io') => (await containerd.ctr(['-n', namespace, 'images', 'ls', '--quiet'])).stdout.split('\n').filter(Boolean)

test('apply imports the images into containerd; a rollback leaves the old release\'s images there', async () => {
  const dev = await makeDevice(join(dir, 'dev'), {trust: [key]})
  await writeDeviceConfig(dev.root, `containerd:\n  address: ${containerd.address}\n`)
  const imp = await ferry(['device', 'import', await bundleWithImage('1.0.0', 'healthy', '1.0'), '--root', dev.root])
  assert.is(imp.code, 0, imp.stderr)
  const first = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(first.code, 0, first.stdout + first.stderr)
  assert.match(first.stdout, /importing 1 image\(s\) into containerd \(k8s\.io\)/)
  assert.ok((await listed()).includes('registry.example.com/edge/app:1.0'), `listed: ${await listed()}`)
  const info = (await containerd.ctr(['-n', 'k8s.io', 'images', 'ls'])).stdout
  assert.ok(info.split('\n').some((l) => l.startsWith('registry.example.com/edge/app:1.0') && l.includes(images['1.0'].digest)), 'under its original name and digest')

  assert.is((await ferry(['device', 'import', await bundleWithImage('2.0.0', 'unhealthy', '2.0'), '--root', dev.root])).code, 0)
  const second = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(second.code, 7, second.stdout + second.stderr)
  assert.match(second.stderr, /rolled back to edge-site 1\.0\.0/)
  assert.is(await readlink(join(dev.root, 'var/lib/ferry/current')), 'slots/a')
  const after = await listed()
  assert.ok(after.includes('registry.example.com/edge/app:1.0'), `the old release's image is still there: ${after}`)
  assert.ok(after.includes('registry.example.com/edge/app:2.0'), 'the new one was imported before its trial')
})

test('containerd out of reach: exit 6, back on the old release, the release not marked bad', async () => {
  const dev = await makeDevice(join(dir, 'dev-down'), {trust: [key]})
  await writeDeviceConfig(dev.root)
  const v1 = await ferry(['device', 'import', await bundleWithImage('1.0.0', 'healthy', '1.0'), '--root', dev.root, '--json'])
  assert.is(v1.code, 0, v1.stdout)
  const ok = await ferry(['device', 'apply', '--root', dev.root, '--containerd-address', containerd.address])
  assert.is(ok.code, 0, ok.stderr)
  const v2 = await ferry(['device', 'import', await bundleWithImage('1.1.0', 'healthy', '2.0'), '--root', dev.root, '--json'])
  const r = await ferry(['device', 'apply', '--root', dev.root], {env: {CONTAINERD_ADDRESS: join(dir, 'nowhere.sock')}})
  assert.is(r.code, 6, r.stdout + r.stderr)
  assert.match(r.stderr, /containerd.*failed.*rolled back to edge-site 1\.0\.0/)
  assert.is(await readlink(join(dev.root, 'var/lib/ferry/current')), 'slots/a')
  assert.not.ok(await isBad(dev.paths, v2.json?.result.digest), 'a runtime failure does not make the release bad')
})

test('a release with images and no image runtime configured is refused before anything changes (exit 2)', async () => {
  const dev = await makeDevice(join(dir, 'dev-none'), {trust: [key]})
  await writeDeviceConfig(dev.root)
  assert.is((await ferry(['device', 'import', await bundleWithImage('1.0.0', 'healthy', '1.0'), '--root', dev.root])).code, 0)
  const r = await ferry(['device', 'apply', '--root', dev.root], {env: {CONTAINERD_ADDRESS: undefined}})
  assert.is(r.code, 2)
  assert.match(r.stderr, /carries 1 image\(s\) but this device names no containerd socket/)
  assert.is((await ferry(['device', 'status', '--root', dev.root, '--json'])).json?.result.state, 'staged')
})

test.run()
