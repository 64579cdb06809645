// Image failures on real parts: a TLS registry with htpasswd auth (CA made with openssl), and a
// proxy in front of a plain one that corrupts a blob, drops a connection or serves schema 1.
import {mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {makeImages, skopeo, startProxy, startRegistry, type Registry} from './helpers/registry.js'

const ctx = {} as {dir: string; plain: Registry; secure: Registry; priv: string; layout: string; layerOf0: string; n: number}
const test = suite('images-failures')

const manifest = async (images: string[], platforms = ['linux/amd64']) => {
  const file = join(ctx.dir, `m${++ctx.n}.yaml`)
  await writeFile(file, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: f${ctx.n}, version: 1.0.0}\nspec:\n  platforms: [${platforms.join(', ')}]\n  images: [${images.join(', ')}]\n`)
  return file
}
const build = (input: string, store: string, extra: string[] = [], env: Record<string, string> = {}) =>
  ferry(['bundle', 'build', input, '--key', ctx.priv, '--out', join(ctx.dir, 'out'), '--store', store, '--json', ...extra], {env: {HOME: ctx.dir, REGISTRY_AUTH_FILE: join(ctx.dir, 'auth.json'), ...env}})

test.before(async () => {
  ctx.n = 0
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-imgfail-'))
  ctx.layout = join(ctx.dir, 'layout')
  makeImages(ctx.layout, 1, 1, 2, 0.2)
  ctx.plain = await startRegistry(join(ctx.dir, 'plain'))
  ctx.secure = await startRegistry(join(ctx.dir, 'secure'), {user: 'ci', password: 'right', tls: true})
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${ctx.layout}:img0`, `docker://${ctx.plain.host}/apps/img0:v1`])
  await skopeo(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${ctx.layout}:multi`, `docker://${ctx.plain.host}/apps/multi:v1`])
  await skopeo(['copy', '-q', '--dest-creds', 'ci:right', '--dest-tls-verify=false', `oci:${ctx.layout}:img0`, `docker://${ctx.secure.host}/apps/img0:v1`])
  const m = JSON.parse(await skopeo(['inspect', '--raw', `oci:${ctx.layout}:img0`]))
  ctx.layerOf0 = m.layers[m.layers.length - 1].digest
  ctx.priv = (await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))).private
})

test.after(async () => {
  await ctx.plain?.stop()
  await ctx.secure?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

const auth = (user: string, password: string) =>
  writeFile(join(ctx.dir, 'auth.json'), JSON.stringify({auths: {[ctx.secure.host]: {auth: Buffer.from(`${user}:${password}`).toString('base64')}}}))

test('TLS registry with basic auth: wrong credentials exit 5 with the reason; right ones and --ca-file work', async () => {
  const m = await manifest([`${ctx.secure.host}/apps/img0:v1`])
  await auth('ci', 'wrong')
  const wrong = await build(m, join(ctx.dir, 's-auth'), ['--ca-file', ctx.secure.caFile!])
  assert.is(wrong.code, 5, wrong.stdout)
  assert.is(wrong.json!.error!.code, 'AUTH_FAILED')
  assert.match(wrong.json!.error!.message, /UNAUTHORIZED|authentication required/)
  await auth('ci', 'right')
  const untrusted = await build(m, join(ctx.dir, 's-auth'))
  assert.is(untrusted.code, 5, untrusted.stdout)
  assert.match(untrusted.json!.error!.message, /--ca-file/)
  const ok = await build(m, join(ctx.dir, 's-auth'), ['--ca-file', ctx.secure.caFile!])
  assert.is(ok.code, 0, ok.stdout)
  const insecure = await build(m, join(ctx.dir, 's-auth2'), ['--insecure-registry', ctx.secure.host])
  assert.is(insecure.code, 0, insecure.stdout)
})

test('an unknown tag is exit 5 naming the image', async () => {
  const r = await ferry(['manifest', 'lock', await manifest([`${ctx.plain.host}/apps/img0:nope`]), '--out', join(ctx.dir, 'x.lock.json'), '--json'])
  assert.is(r.code, 5, r.stdout)
  assert.match(r.json!.error!.message, /apps\/img0:nope.*MANIFEST_UNKNOWN/)
})

test('a blob whose bytes do not match its digest: exit 3, nothing kept', async () => {
  const proxy = await startProxy(ctx.plain.host, {corrupt: ctx.layerOf0})
  try {
    const store = join(ctx.dir, 's-corrupt')
    const r = await build(await manifest([`${proxy.host}/apps/img0:v1`]), store)
    assert.is(r.code, 3, r.stdout)
    assert.is(r.json!.error!.code, 'DIGEST_MISMATCH')
    assert.not.ok((await readdir(join(store, 'blobs', 'sha256'))).includes(ctx.layerOf0.slice(7)))
    assert.equal(await readdir(join(store, 'partial')), [])
  } finally {
    await proxy.close()
  }
})

test('a build that fails keeps the layers it did download: the next one fetches only the rest', async () => {
  const layout = join(ctx.dir, 'layout-salvage')
  makeImages(layout, 1, 2, 1, 0.5)
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:img0`, `docker://${ctx.plain.host}/apps/salvage:v1`])
  const m = JSON.parse(await skopeo(['inspect', '--raw', `oci:${layout}:img0`]))
  const bad = m.layers[m.layers.length - 1]
  const proxy = await startProxy(ctx.plain.host, {corrupt: bad.digest})
  const store = join(ctx.dir, 's-salvage')
  try {
    const r = await build(await manifest([`${proxy.host}/apps/salvage:v1`]), store)
    assert.is(r.code, 3, r.stdout)
  } finally {
    await proxy.close()
  }
  const kept = await readdir(join(store, 'blobs', 'sha256'))
  for (const layer of m.layers.slice(0, -1)) assert.ok(kept.includes(layer.digest.slice(7)), `${layer.digest} kept`)
  assert.not.ok(kept.includes(bad.digest.slice(7)))
  const again = await build(await manifest([`${ctx.plain.host}/apps/salvage:v1`]), store)
  assert.is(again.code, 0, again.stdout)
  assert.is(again.json!.result.fetched, bad.size)
})

test('a connection dropped mid-layer is resumed with Range', async () => {
  const proxy = await startProxy(ctx.plain.host, {dropAfter: {digest: ctx.layerOf0, bytes: 300_000}})
  try {
    const r = await build(await manifest([`${proxy.host}/apps/img0:v1`]), join(ctx.dir, 's-drop'))
    assert.is(r.code, 0, r.stdout)
    const gets = proxy.seen.filter((s) => s.endsWith(ctx.layerOf0))
    assert.ok(gets.length >= 2, gets.join('\n'))
  } finally {
    await proxy.close()
  }
})

test('a schema-1 manifest is refused with a clear message', async () => {
  const proxy = await startProxy(ctx.plain.host, {schema1Path: '/v2/old/app/manifests/v1'})
  try {
    const r = await ferry(['manifest', 'lock', await manifest([`${proxy.host}/old/app:v1`]), '--out', join(ctx.dir, 'y.lock.json'), '--json'])
    assert.is(r.code, 5, r.stdout)
    assert.match(r.json!.error!.message, /schema 1/)
  } finally {
    await proxy.close()
  }
})

test('a platform the index does not offer is exit 2, listing what it has', async () => {
  const r = await ferry(['manifest', 'lock', await manifest([`${ctx.plain.host}/apps/multi:v1`], ['linux/s390x']), '--out', join(ctx.dir, 'z.lock.json'), '--json'])
  assert.is(r.code, 2, r.stdout)
  assert.match(r.json!.error!.message, /linux\/s390x.*linux\/amd64, linux\/arm64/)
})

test('a single-platform image for another platform is exit 2, naming both, and leaves no bundle', async () => {
  const r = await build(await manifest([`${ctx.plain.host}/apps/img0:v1`], ['linux/arm64']), join(ctx.dir, 'store-arch'))
  assert.is(r.code, 2, r.stdout)
  assert.is(r.json!.error!.code, 'PLATFORM_NOT_FOUND')
  assert.match(r.json!.error!.message, /single-platform image for linux\/amd64.*linux\/arm64/)
  assert.not.ok((await readdir(join(ctx.dir, 'out')).catch(() => [] as string[])).some((f) => f.startsWith('f') && f.endsWith('.ferry.tar') && f.includes(`f${ctx.n}-`)))
})

test.run()
