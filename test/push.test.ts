// `ferry bundle push` into a fresh loopback docker-registry; skopeo then sees the same digests.
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {makeImages, registryDigest, skopeo, startRegistry, type Registry} from './helpers/registry.js'

const ctx = {} as {dir: string; source: Registry; site: Registry; bundle: string; pub: string; otherPub: string}
const test = suite('push')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-push-'))
  makeImages(join(ctx.dir, 'layout'), 2, 1, 0.3, 0.2)
  ctx.source = await startRegistry(join(ctx.dir, 'source'))
  ctx.site = await startRegistry(join(ctx.dir, 'site'))
  const h = ctx.source.host
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${join(ctx.dir, 'layout')}:img0`, `docker://${h}/apps/img0:v1`])
  await skopeo(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${join(ctx.dir, 'layout')}:multi`, `docker://${h}/apps/multi:v1`])
  const keys = join(ctx.dir, 'keys')
  const pair = await writeKeyPair(keys, 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))
  ctx.pub = pair.public
  ctx.otherPub = (await writeKeyPair(keys, 'other', await generateKeyPair({name: 'o', date: new Date(Date.now() - 60_000)}))).public
  const m = join(ctx.dir, 'site.yaml')
  await writeFile(m, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: push, version: 1.0.0}\nspec:\n  images: [${h}/apps/img0:v1, ${h}/apps/multi:v1, oci:layout:img1]\n`)
  const r = await ferry(['bundle', 'build', m, '--key', pair.private, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  ctx.bundle = r.json!.result.path
})

test.after(async () => {
  await ctx.source?.stop()
  await ctx.site?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('a bundle signed by another key is not pushed', async () => {
  const r = await ferry(['bundle', 'push', ctx.bundle, `${ctx.site.host}/edge`, '--key', ctx.otherPub, '--json'])
  assert.is(r.code, 4, r.stdout)
})

test('push loads every image with the registry digests; a second push sends nothing', async () => {
  const r = await ferry(['bundle', 'push', ctx.bundle, `${ctx.site.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  const res = r.json!.result
  assert.ok(res.blobs.uploaded > 0)
  assert.ok(res.blobs.mounted >= 1, 'the shared base layer is mounted, not sent twice')
  const s = ctx.site.host
  const h = ctx.source.host
  assert.is(await registryDigest(`${s}/edge/apps/img0:v1`), await registryDigest(`${h}/apps/img0:v1`))
  // distribution refuses an index whose other platforms are absent: the tag names the kept child.
  const multi = res.images.find((i: {ref: string}) => i.ref.endsWith('/apps/multi:v1'))
  const index = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${h}/apps/multi:v1`]))
  const amd64 = index.manifests.find((m: {platform: {architecture: string}}) => m.platform.architecture === 'amd64').digest
  assert.is(multi.platformManifest, true)
  assert.is(await registryDigest(`${s}/edge/apps/multi:v1`), amd64)
  assert.ok(await registryDigest(`${s}/edge/library/img1:latest`))
  const again = await ferry(['bundle', 'push', ctx.bundle, `${ctx.site.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(again.code, 0, again.stdout)
  assert.is(again.json!.result.blobs.uploaded, 0)
  assert.is(again.json!.result.bytes, 0)
})

test.run()
