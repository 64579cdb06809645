// Image signatures travel with the images: carried in the bundle (covered by bundle.json), shown
// by inspect, pushed into the site registry under the tags cosign looks at (checked there with
// the same code and with openssl), and kept out of containerd's image list on the device.
import {execFileSync} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {buildBundle} from '../src/bundle/build.js'
import {hostPlatform} from '../src/device/platform.js'
import {lockManifest} from '../src/manifest/lock.js'
import {HealthCheck} from '../src/manifest/lock-format.js'
import {verifyCosign} from '../src/sources/oci/cosign-check.js'
import {findCosignSignatures} from '../src/sources/oci/cosign-find.js'
import {parseRegistryReference} from '../src/sources/oci/reference.js'
import {RegistryPool} from '../src/sources/oci/registry-source.js'
import {BlobStore} from '../src/store/blob-store.js'
import {parseCosignKey} from '../src/trust/cosign.js'
import {fileSigner} from '../src/trust/sign.js'
import {ferry} from './helpers/cli.js'
import {startContainerd} from './helpers/containerd.js'
import {headManifest, makeKey, pushBundleReferrer, pushSigTag, writePublicKey, type TestKey} from './helpers/cosign.js'
import {makeDevice, makeKey as makePgpKey, type TestKey as PgpKey} from './helpers/device.js'
import {readEntries} from './helpers/tar-craft.js'
import {makeImages, skopeo, startRegistry, type Registry} from './helpers/registry.js'
import {nodesReady, standInArtifacts, writeDeviceConfig} from './helpers/stand-ins.js'

const ctx = {} as {dir: string; source: Registry; site: Registry; key: TestKey; pgp: PgpKey; bundle: string; digest: string; store: string}
const test = suite('cosign signatures travel')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-cosign-travel-'))
  const layout = join(ctx.dir, 'layout')
  makeImages(layout, 2, 1, 0.02, 0.02)
  ctx.source = await startRegistry(join(ctx.dir, 'source'))
  ctx.site = await startRegistry(join(ctx.dir, 'site'))
  const h = ctx.source.host
  for (const repo of ['old', 'new']) await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:img0`, `docker://${h}/s/${repo}:v1`])
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:img1`, `docker://${h}/s/plain:v1`])
  const image = await headManifest(h, 's/old', 'v1')
  ctx.digest = image.digest
  ctx.key = makeKey('ec')
  await writePublicKey(ctx.key, join(ctx.dir, 'app.pub'))
  await pushSigTag(h, 's/old', image.digest, ctx.key)
  await pushBundleReferrer(h, 's/new', image, ctx.key)
  ctx.pgp = await makePgpKey(ctx.dir, 'release')
  const manifest = join(ctx.dir, 'site.yaml')
  await writeFile(
    manifest,
    `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: edge-site, version: 1.0.0}\nspec:\n  platforms: [${hostPlatform()}]\n  images:\n    - {ref: ${h}/s/old:v1, cosign: {key: app.pub}}\n    - {ref: ${h}/s/new:v1, cosign: {key: app.pub}}\n    - ${h}/s/plain:v1\n`,
  )
  const lock = await lockManifest(manifest)
  ctx.store = join(ctx.dir, 'store')
  const store = new BlobStore(ctx.store)
  for (const a of standInArtifacts('1.0.0', 'healthy')) {
    const got = await store.ingest([Buffer.from(a.content as string)], {what: a.name})
    lock.artifacts.push({name: a.name, kind: a.kind ?? 'file', url: `http://fixture.invalid/${a.name}`, sha256: got.digest.slice(7), size: got.size, mediaType: 'application/octet-stream', dest: a.dest, upstream: {verifiedBy: 'sha256'}})
  }
  lock.health = [HealthCheck.parse(nodesReady(10))]
  const built = await buildBundle(lock, {store, signers: [await fileSigner(ctx.pgp.priv)], outDir: join(ctx.dir, 'out')})
  ctx.bundle = built.path
})

test.after(async () => {
  await ctx.source?.stop()
  await ctx.site?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('the bundle carries both signature manifests and their blobs, named by bundle.json and not by index.json', async () => {
  const entries = await readEntries(ctx.bundle)
  const json = JSON.parse(entries.find((e) => e.path === 'bundle.json')!.data.toString())
  const signed = json.artifacts.filter((a: {cosign?: unknown}) => a.cosign)
  assert.is(signed.length, 2)
  const names = new Set(entries.map((e) => e.path))
  for (const a of signed) assert.ok(names.has(`blobs/sha256/${a.cosign.manifest.digest.slice(7)}`), a.name)
  const index = entries.find((e) => e.path === 'index.json')!.data.toString()
  for (const a of signed) assert.not.match(index, a.cosign.manifest.digest)
  const v = await ferry(['bundle', 'verify', ctx.bundle, '--key', ctx.pgp.pub, '--json'])
  assert.is(v.code, 0, v.stdout + v.stderr)
})

test('inspect: signed by the key fingerprint, or no signature required', async () => {
  const r = await ferry(['bundle', 'inspect', ctx.bundle])
  assert.is(r.code, 0, r.stderr)
  const line = (repo: string) => r.stdout.split('\n').find((l) => l.includes(`/s/${repo}:v1`)) ?? ''
  assert.match(line('old'), `signed by ${ctx.key.fingerprint}`)
  assert.match(line('new'), `signed by ${ctx.key.fingerprint}`)
  assert.match(line('plain'), 'no signature required')
  const j = await ferry(['bundle', 'inspect', ctx.bundle, '--json'])
  const old = j.json?.result.images.find((i: {ref: string}) => i.ref.endsWith('/s/old:v1'))
  assert.equal(old.signedBy, {key: ctx.key.fingerprint, keyFile: 'app.pub', form: 'simplesigning'})
})

test('after bundle push, the site registry has the signatures where cosign looks, and they verify there', async () => {
  const push = await ferry(['bundle', 'push', ctx.bundle, `${ctx.site.host}/edge`, '--key', ctx.pgp.pub, '--json'])
  assert.is(push.code, 0, push.stdout + push.stderr)
  const pool = new RegistryPool({})
  const key = parseCosignKey(ctx.key.publicPem, 'app.pub')
  for (const [repo, form] of [['old', 'simplesigning'], ['new', 'sigstore-bundle']] as const) {
    const ref = parseRegistryReference(`${ctx.site.host}/edge/s/${repo}:v1`)
    const found = await findCosignSignatures(pool, ref, ctx.digest)
    assert.equal(found.map((f) => f.form), [form], repo)
    assert.is(verifyCosign(`${ctx.site.host}/edge/s/${repo}:v1`, ctx.digest, [key], found).key.fingerprint, ctx.key.fingerprint)
  }
  // and without Ferry: the .sig tag's payload and annotation, checked by openssl
  const tag = `${ctx.digest.replace(':', '-')}.sig`
  const res = await fetch(`http://${ctx.site.host}/v2/edge/s/old/manifests/${tag}`, {headers: {Accept: 'application/vnd.oci.image.manifest.v1+json'}})
  assert.is(res.status, 200)
  const sig = (await res.json()) as {layers: Array<{digest: string; annotations: Record<string, string>}>}
  const payload = Buffer.from(await (await fetch(`http://${ctx.site.host}/v2/edge/s/old/blobs/${sig.layers[0].digest}`)).arrayBuffer())
  assert.match(payload.toString(), `"docker-manifest-digest":"${ctx.digest}"`)
  await writeFile(join(ctx.dir, 'payload'), payload)
  await writeFile(join(ctx.dir, 'sig.der'), Buffer.from(sig.layers[0].annotations['dev.cosignproject.cosign/signature'], 'base64'))
  const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(ctx.dir, 'app.pub'), '-signature', join(ctx.dir, 'sig.der'), join(ctx.dir, 'payload')]).toString()
  assert.match(out, 'Verified OK')
  // the image the tag names is the one signed
  assert.is((await headManifest(ctx.site.host, 'edge/s/old', 'v1')).digest, ctx.digest)
})

test('device import and apply into containerd: the images are there, the signature manifests are not', async () => {
  const containerd = await startContainerd(join(ctx.dir, 'containerd'))
  try {
    const dev = await makeDevice(join(ctx.dir, 'dev'), {trust: [ctx.pgp]})
    await writeDeviceConfig(dev.root, `containerd:\n  address: ${containerd.address}\n`)
    const imp = await ferry(['device', 'import', ctx.bundle, '--root', dev.root])
    assert.is(imp.code, 0, imp.stdout + imp.stderr)
    const apply = await ferry(['device', 'apply', '--root', dev.root])
    assert.is(apply.code, 0, apply.stdout + apply.stderr)
    const listed = (await containerd.ctr(['-n', 'k8s.io', 'images', 'ls'])).stdout
    const names = listed.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0])
    assert.equal(names.sort(), [`${ctx.source.host}/s/new:v1`, `${ctx.source.host}/s/old:v1`, `${ctx.source.host}/s/plain:v1`])
    assert.not.match(listed, '.sig')
    assert.not.match(listed, 'sigstore')
  } finally {
    await containerd.stop()
  }
})

test.run()
