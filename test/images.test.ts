// Images end to end on real parts: a loopback docker-registry fed by skopeo with generated images,
// `ferry manifest lock` + `bundle build` through the binary, then skopeo, umoci and a real containerd
// reading the extracted bundle under the images' original names.
import {execFileSync, spawn} from 'node:child_process'
import {statSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry, REPO} from './helpers/cli.js'
import {makeFatStick} from './helpers/fat.js'
import {startContainerd} from './helpers/containerd.js'
import {makeImages, registryDigest, skopeo, startProxy, startRegistry, type Proxy, type Registry} from './helpers/registry.js'
import {readEntries} from './helpers/tar-craft.js'

const ctx = {} as {dir: string; registry: Registry; pub: string; priv: string; lock: string; bundle: string; store: string; layout: string}
const test = suite('images')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-images-'))
  ctx.layout = join(ctx.dir, 'layout')
  makeImages(ctx.layout, 3, 2, 0.5, 0.3)
  ctx.registry = await startRegistry(join(ctx.dir, 'registry'))
  const h = ctx.registry.host
  for (const i of [0, 1, 2]) await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${ctx.layout}:img${i}`, `docker://${h}/apps/img${i}:v1`])
  await skopeo(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${ctx.layout}:multi`, `docker://${h}/apps/multi:v1`])
  await skopeo(['copy', '-q', `oci:${ctx.layout}:img2`, `oci-archive:${join(ctx.dir, 'ci-image.tar')}:ci.example.com/team/app:2.0`])
  const pair = await writeKeyPair(join(ctx.dir, 'keys'), 'release', await generateKeyPair({name: 'test', date: new Date(Date.now() - 60_000)}))
  ctx.pub = pair.public
  ctx.priv = pair.private
  ctx.store = join(ctx.dir, 'store')
  await writeFile(
    join(ctx.dir, 'site.yaml'),
    `apiVersion: ferry/v1
kind: Bundle
metadata: {name: img-site, version: 1.0.0}
spec:
  platforms: [linux/amd64]
  images:
    - ${h}/apps/img0:v1
    - ${h}/apps/img1:v1
    - ${h}/apps/multi:v1
    - oci:layout:img1
    - oci-archive:ci-image.tar:ci.example.com/team/app:2.0
`,
  )
  ctx.lock = join(ctx.dir, 'site.lock.json')
  const locked = await ferry(['manifest', 'lock', join(ctx.dir, 'site.yaml'), '--out', ctx.lock, '--json'])
  assert.is(locked.code, 0, locked.stderr + locked.stdout)
  const built = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', join(ctx.dir, 'out'), '--store', ctx.store, '--json'])
  assert.is(built.code, 0, built.stderr + built.stdout)
  ctx.bundle = built.json!.result.path
})

test.after(async () => {
  await ctx.registry?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

const sha256Of = (file: string) => execFileSync('sha256sum', [file]).toString().split(' ')[0]

const extract = async (name: string) => {
  const dir = join(ctx.dir, name)
  await mkdir(dir, {recursive: true})
  execFileSync('tar', ['-xf', ctx.bundle, '-C', dir])
  return dir
}

test('the bundle verifies, and each image keeps the digest the registry gives it', async () => {
  const v = await ferry(['bundle', 'verify', ctx.bundle, '--key', ctx.pub, '--json'])
  assert.is(v.code, 0, v.stdout + v.stderr)
  const dir = await extract('x-digests')
  const h = ctx.registry.host
  for (const name of ['img0', 'img1', 'multi']) {
    const ref = `${h}/apps/${name}:v1`
    const inBundle = JSON.parse(await skopeo(['inspect', '--raw', `oci:${dir}:${ref}`]))
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])
    assert.equal(inBundle, JSON.parse(raw), name)
    const index = JSON.parse(execFileSync('cat', [join(dir, 'index.json')]).toString()) as {manifests: Array<{digest: string; annotations: Record<string, string>}>}
    const entry = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === ref)
    assert.ok(entry, `index.json names ${ref}`)
    assert.is(entry!.annotations['io.containerd.image.name'], ref)
    if (name !== 'multi') assert.is(entry!.digest, await registryDigest(ref))
  }
})

test('a layer shared by several images is stored once; a platform-filtered index keeps only its children', async () => {
  const entries = await readEntries(ctx.bundle)
  const names = entries.map((e) => e.path)
  assert.is(new Set(names).size, names.length)
  const dir = await extract('x-shared')
  const index = JSON.parse(execFileSync('cat', [join(dir, 'index.json')]).toString())
  const multi = index.manifests.find((m: {annotations: Record<string, string>}) => m.annotations['org.opencontainers.image.ref.name'].endsWith('/apps/multi:v1'))
  const doc = JSON.parse(execFileSync('cat', [join(dir, 'blobs/sha256', multi.digest.slice(7))]).toString())
  const blobs = new Set(await readdir(join(dir, 'blobs/sha256')))
  const present = doc.manifests.filter((m: {digest: string}) => blobs.has(m.digest.slice(7)))
  assert.is(present.length, 1)
  assert.is(present[0].platform.architecture, 'amd64')
})

test('skopeo copies and umoci unpacks the images of the extracted bundle', async () => {
  const dir = await extract('x-tools')
  const h = ctx.registry.host
  await skopeo(['copy', '-q', `oci:${dir}:${h}/apps/img0:v1`, `oci:${join(ctx.dir, 'copied')}:img0`])
  await skopeo(['copy', '-q', `oci:${dir}:ci.example.com/team/app:2.0`, `oci:${join(ctx.dir, 'copied')}:app`])
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${dir}:${h}/apps/img1:v1`, join(ctx.dir, 'unpacked')], {stdio: 'ignore'})
  const files = await readdir(join(ctx.dir, 'unpacked', 'rootfs'))
  assert.ok(files.includes('base.bin') && files.includes('img1-l0.bin'), files.join(','))
})

test('containerd imports the bundle under the images\' original names', async () => {
  const c = await startContainerd(join(ctx.dir, 'containerd'))
  try {
    await c.ctr(['-n', 'k8s.io', 'images', 'import', '--platform', 'linux/amd64', ctx.bundle])
    const names = (await c.ctr(['-n', 'k8s.io', 'images', 'ls', '-q'])).stdout.split('\n').filter(Boolean).sort()
    const h = ctx.registry.host
    assert.equal(names, [`${h}/apps/img0:v1`, `${h}/apps/img1:v1`, `${h}/apps/multi:v1`, 'ci.example.com/team/app:2.0', 'docker.io/library/img1:latest'].sort())
  } finally {
    await c.stop()
  }
})

test('a rebuild with a warm store fetches nothing and gives the same bytes', async () => {
  const again = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', join(ctx.dir, 'out2'), '--store', ctx.store, '--json'])
  assert.is(again.code, 0, again.stderr)
  assert.is(again.json!.result.fetched, 0)
  const first = execFileSync('sha256sum', [ctx.bundle]).toString().split(' ')[0]
  assert.is(again.json!.result.sha256, first)
  // The same lock and signer: the store's pack is this very bundle, linked rather than written.
  assert.is(again.json!.result.reused, true)
  assert.is(sha256Of(again.json!.result.path), first)
  // Another signer changes the head: every blob is copied from the pack, nothing fetched.
  const other = await writeKeyPair(join(ctx.dir, 'keys2'), 'other', await generateKeyPair({name: 'other', date: new Date(Date.now() - 60_000)}))
  const resigned = await ferry(['bundle', 'build', ctx.lock, '--key', other.private, '--out', join(ctx.dir, 'out3'), '--store', ctx.store, '--json'])
  assert.is(resigned.code, 0, resigned.stderr)
  assert.is(resigned.json!.result.fetched, 0)
  assert.is(resigned.json!.result.reused, false)
  assert.is(sha256Of(resigned.json!.result.path), resigned.json!.result.sha256)
  const verified = await ferry(['bundle', 'verify', resigned.json!.result.path, '--key', other.public, '--json'])
  assert.is(verified.code, 0, verified.stdout)
  // The new bundle holds every blob of the old one: its pack supersedes the old pack.
  assert.equal((await readdir(join(ctx.store, 'packs'))).filter((n) => n.endsWith('.tar')), [`${resigned.json!.result.sha256}.tar`])
})

test('with a warm store a rebuild needs no registry: documents and blobs come from the store', async () => {
  const proxy = await startProxy(ctx.registry.host)
  const manifest = join(ctx.dir, 'offline.yaml')
  await writeFile(manifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: offline, version: 1.0.0}\nspec:\n  platforms: [linux/amd64]\n  images: [${proxy.host}/apps/img1:v1, ${proxy.host}/apps/multi:v1]\n`)
  const lock = join(ctx.dir, 'offline.lock.json')
  const store = join(ctx.dir, 'store-offline')
  try {
    assert.is((await ferry(['manifest', 'lock', manifest, '--out', lock, '--json'])).code, 0)
    const cold = await ferry(['bundle', 'build', lock, '--key', ctx.priv, '--out', join(ctx.dir, 'out-offline1'), '--store', store, '--json'])
    assert.is(cold.code, 0, cold.stdout + cold.stderr)
    assert.ok(proxy.seen.some((r) => r.includes('/manifests/')), 'the first build did not go through the registry')
  } finally {
    await proxy.close()
  }
  // the registry is gone now; another signer, so the bundle is written again blob by blob
  const other = await writeKeyPair(join(ctx.dir, 'keys-offline'), 'other', await generateKeyPair({name: 'other', date: new Date(Date.now() - 60_000)}))
  const warm = await ferry(['bundle', 'build', lock, '--key', other.private, '--out', join(ctx.dir, 'out-offline2'), '--store', store, '--json'])
  assert.is(warm.code, 0, warm.stdout + warm.stderr)
  assert.is(warm.json!.result.fetched, 0)
  const verified = await ferry(['bundle', 'verify', warm.json!.result.path, '--key', other.public, '--json'])
  assert.is(verified.code, 0, verified.stdout)
})

test('layers go straight into the bundle, which the store keeps as a pack; with the store on another file system they go through it', async () => {
  const packs = (await readdir(join(ctx.store, 'packs'))).filter((n) => n.endsWith('.tar'))
  assert.is(packs.length, 1, 'the bundle is kept as a pack')
  assert.is(statSync(join(ctx.store, 'packs', packs[0])).nlink, 2, 'a hard link, not a copy')
  const loose = new Set(await readdir(join(ctx.store, 'blobs', 'sha256')))
  const layers = (await readEntries(ctx.bundle)).filter((e) => e.path.startsWith('blobs/sha256/') && e.data.length >= 256 << 10)
  assert.ok(layers.length > 0)
  assert.ok(layers.every((e) => !loose.has(e.path.slice('blobs/sha256/'.length))), 'no second copy of the layers in the store')
  // /dev/shm is tmpfs, the test folder is not: no hard link between them.
  const other = await mkdtemp('/dev/shm/ferry-images-store-')
  try {
    const r = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', join(ctx.dir, 'out-other'), '--store', other, '--json'])
    assert.is(r.code, 0, r.stderr)
    assert.is(r.json!.result.sha256, sha256Of(ctx.bundle))
    const stored = new Set(await readdir(join(other, 'blobs', 'sha256')))
    assert.ok(layers.every((e) => stored.has(e.path.slice('blobs/sha256/'.length))), 'every layer is in the store')
    assert.equal(await readdir(join(other, 'packs')), [])
  } finally {
    await rm(other, {recursive: true, force: true})
  }
})

test('store and output on a file system without hard links (FAT): the layers are copied into the store', async () => {
  const stick = await makeFatStick(join(ctx.dir, 'fat'), 64)
  try {
    const store = join(stick.dir, 'store')
    const r = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', join(stick.dir, 'out'), '--store', store, '--json'])
    assert.is(r.code, 0, r.stderr + r.stdout)
    assert.is(r.json!.result.sha256, sha256Of(ctx.bundle))
    assert.equal((await readdir(join(store, 'packs'))).filter((n) => n.endsWith('.tar')), [], 'no pack without a hard link')
    const stored = new Set((await readdir(join(store, 'blobs', 'sha256'))).map((n) => n.toLowerCase()))
    const layers = (await readEntries(ctx.bundle)).filter((e) => e.path.startsWith('blobs/sha256/') && e.data.length >= 256 << 10)
    assert.ok(layers.every((e) => stored.has(e.path.slice('blobs/sha256/'.length))), 'every layer is in the store')
    const again = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', join(stick.dir, 'out2'), '--store', store, '--json'])
    assert.is(again.code, 0, again.stderr)
    assert.is(again.json!.result.fetched, 0)
  } finally {
    await stick.unmount()
  }
})

test('kill -9 at random moments of an image build that shares its store: the next build still gives the same bytes', async () => {
  const store = join(ctx.dir, 'store-killed')
  const out = join(ctx.dir, 'out-killed')
  for (const delay of [120, 250, 400, 600, 900]) {
    await rm(out, {recursive: true, force: true})
    const child = spawn(join(REPO, 'bin', 'run.js'), ['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', out, '--store', store, '-q'], {stdio: 'ignore'})
    const closed = new Promise((r) => child.once('close', r))
    await new Promise((r) => setTimeout(r, delay))
    child.kill('SIGKILL')
    await closed
  }
  await rm(out, {recursive: true, force: true})
  const r = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.priv, '--out', out, '--store', store, '--json'])
  assert.is(r.code, 0, r.stderr + r.stdout)
  assert.is(r.json!.result.sha256, sha256Of(ctx.bundle))
  assert.is(sha256Of(r.json!.result.path), sha256Of(ctx.bundle))
  assert.equal((await readdir(out)).filter((f) => f.endsWith('.partial') || f.endsWith('.lock')), [])
  // every pack left in the store is the file its index names
  const packs = await readdir(join(store, 'packs'))
  for (const index of packs.filter((n) => n.endsWith('.json'))) {
    const id = index.slice(0, -'.json'.length)
    assert.ok(packs.includes(`${id}.tar`), `${id} has its archive`)
    assert.is(sha256Of(join(store, 'packs', `${id}.tar`)), id)
  }
})

test('inspect lists the images with digest, platforms and size', async () => {
  const r = await ferry(['bundle', 'inspect', ctx.bundle])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /images:/)
  assert.match(r.stdout, new RegExp(`${ctx.registry.host}/apps/multi:v1\\s+v1\\s+sha256:[0-9a-f]{12}\\s+linux/amd64`))
  // a single manifest's platform comes from its config, read when the lock was made
  assert.match(r.stdout, new RegExp(`${ctx.registry.host}/apps/img0:v1\\s+v1\\s+sha256:[0-9a-f]{12}\\s+linux/amd64`))
  const json = await ferry(['bundle', 'inspect', ctx.bundle, '--json'])
  const images = json.json!.result.images as Array<{ref: string; platforms?: string[]}>
  assert.ok(images.length >= 5)
  assert.ok(images.every((i) => i.platforms?.length), JSON.stringify(images))
})

test('Bearer-token auth: credentials from REGISTRY_AUTH_FILE, one token per scope', async () => {
  let proxy: Proxy | undefined
  try {
    proxy = await startProxy(ctx.registry.host, {bearer: {user: 'ci', password: 's3cret'}})
    const manifest = join(ctx.dir, 'bearer.yaml')
    await writeFile(manifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: bearer, version: 1.0.0}\nspec:\n  images: [${proxy.host}/apps/img0:v1]\n`)
    const anonymous = await ferry(['manifest', 'lock', manifest, '--out', join(ctx.dir, 'bearer.lock.json'), '--json'], {env: {REGISTRY_AUTH_FILE: join(ctx.dir, 'none.json'), HOME: ctx.dir}})
    assert.is(anonymous.code, 5, anonymous.stdout)
    const auth = join(ctx.dir, 'auth.json')
    await writeFile(auth, JSON.stringify({auths: {[proxy.host]: {auth: Buffer.from('ci:s3cret').toString('base64')}}}))
    const env = {REGISTRY_AUTH_FILE: auth, HOME: ctx.dir}
    const locked = await ferry(['manifest', 'lock', manifest, '--out', join(ctx.dir, 'bearer.lock.json'), '--json'], {env})
    assert.is(locked.code, 0, locked.stdout)
    const built = await ferry(['bundle', 'build', join(ctx.dir, 'bearer.lock.json'), '--key', ctx.priv, '--out', join(ctx.dir, 'out-bearer'), '--store', join(ctx.dir, 'store-bearer'), '--json'], {env})
    assert.is(built.code, 0, built.stdout)
    assert.ok(proxy.tokens >= 1 && proxy.tokens <= 3, `tokens: ${proxy.tokens}`)
  } finally {
    await proxy?.close()
  }
})

test('blob fetches run in parallel across images, never more at once than --jobs', async () => {
  let proxy: Proxy | undefined
  try {
    proxy = await startProxy(ctx.registry.host, {holdBlobs: 150})
    const manifest = join(ctx.dir, 'parallel.yaml')
    await writeFile(manifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: parallel, version: 1.0.0}\nspec:\n  platforms: [linux/amd64]\n  images: [${proxy.host}/apps/img0:v1, ${proxy.host}/apps/img1:v1, ${proxy.host}/apps/multi:v1]\n`)
    const lock = join(ctx.dir, 'parallel.lock.json')
    assert.is((await ferry(['manifest', 'lock', manifest, '--out', lock, '--json'])).code, 0)
    proxy.resetPeaks()
    const built = await ferry(['bundle', 'build', lock, '--key', ctx.priv, '--out', join(ctx.dir, 'out-parallel'), '--store', join(ctx.dir, 'store-parallel'), '--jobs', '3', '--json'])
    assert.is(built.code, 0, built.stdout + built.stderr)
    assert.is(proxy.peakBlobs, 3, `at most ${proxy.peakBlobs} blob downloads ran at once`)
    assert.ok(proxy.peakRepositories >= 2, 'downloads never overlapped across images')
    // the bytes fetched are counted whole however many downloads ran at once
    const one = await ferry(['bundle', 'build', lock, '--key', ctx.priv, '--out', join(ctx.dir, 'out-serial'), '--store', join(ctx.dir, 'store-serial'), '--jobs', '1', '--json'])
    assert.is(one.code, 0, one.stdout + one.stderr)
    assert.ok(one.json!.result.fetched > 1 << 20, `fetched ${one.json!.result.fetched}`)
    assert.is(built.json!.result.fetched, one.json!.result.fetched)
  } finally {
    await proxy?.close()
  }
})

test.run()
