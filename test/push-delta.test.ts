// `ferry bundle push` of a delta bundle into real loopback docker-registry instances: v1 holds three
// images (img0, img1 and a platform-filtered multi-arch index); v2 adds a layer to img0 with umoci, ships
// that image as img1 too and v1's img1 as "copy", so the delta carries img0's new layer, config and
// manifest only.
import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {layoutWithNewLayer, makeImages, registryDigest, skopeo, startRegistry, type Registry} from './helpers/registry.js'

interface Ctx {
  dir: string
  registries: Registry[]
  pub: string
  v1: string
  delta: string
  /** image reference → digest, from the delta's bundle.json */
  digests: Map<string, string>
  /** the amd64 child of "multi", which distribution gets under the tag */
  multiChild: string
  /** img1's digest in v1, "copy" in v2 */
  v1Img1: string
  /** blobs the delta carries: digest → size */
  carried: Map<string, number>
  documents: number
}
const ctx = {registries: []} as unknown as Ctx
const test = suite('push delta')

const ref = (name: string) => `docker.io/library/${name}:latest`
const images = (layout: string, names: string[]) => names.map((n) => `"oci:${layout}:${n}"`).join(', ')
const manifestYaml = (version: string, list: string) => `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: site, version: ${version}}\nspec:\n  images: [${list}]\n`

async function registry(name: string): Promise<Registry> {
  const r = await startRegistry(join(ctx.dir, name))
  ctx.registries.push(r)
  return r
}

/** Repositories the registry holds: anything a push wrote, blob or manifest, makes one. */
async function catalog(r: Registry): Promise<string[]> {
  const res = await fetch(`http://${r.host}/v2/_catalog`)
  return ((await res.json()) as {repositories: string[]}).repositories
}

async function assertImages(r: Registry) {
  for (const name of ['img0', 'img1', 'copy']) assert.is(await registryDigest(`${r.host}/edge/library/${name}:latest`), ctx.digests.get(ref(name)), name)
  assert.is(ctx.digests.get(ref('img1')), ctx.digests.get(ref('img0')))
  assert.is(ctx.digests.get(ref('copy')), ctx.v1Img1)
  assert.is(await registryDigest(`${r.host}/edge/library/multi:latest`), ctx.multiChild)
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-push-delta-'))
  const v1Layout = join(ctx.dir, 'v1')
  const v2Layout = join(ctx.dir, 'v2')
  makeImages(v1Layout, 2, 1, 0.3, 0.2)
  await layoutWithNewLayer(v1Layout, v2Layout, 'img0', 256 * 1024)
  // v2's img1 becomes the new img0, and v1's img1 lives on as "copy", a repository new to the registry.
  const index = JSON.parse(await readFile(join(v2Layout, 'index.json'), 'utf8'))
  const named = (n: string) => index.manifests.findIndex((m: {annotations?: Record<string, string>}) => m.annotations?.['org.opencontainers.image.ref.name'] === n)
  const oldImg1 = index.manifests[named('img1')]
  index.manifests[named('img1')] = {...index.manifests[named('img0')], annotations: {'org.opencontainers.image.ref.name': 'img1'}}
  index.manifests.push({...oldImg1, annotations: {'org.opencontainers.image.ref.name': 'copy'}})
  await writeFile(join(v2Layout, 'index.json'), JSON.stringify(index))

  const pair = await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))
  ctx.pub = pair.public
  const store = join(ctx.dir, 'store')
  await writeFile(join(ctx.dir, 'v1.yaml'), manifestYaml('1.0.0', images(v1Layout, ['img0', 'img1', 'multi'])))
  await writeFile(join(ctx.dir, 'v2.yaml'), manifestYaml('2.0.0', images(v2Layout, ['img0', 'img1', 'multi', 'copy'])))
  const b1 = await ferry(['bundle', 'build', join(ctx.dir, 'v1.yaml'), '--key', pair.private, '--out', join(ctx.dir, 'out'), '--store', store, '--json'])
  assert.is(b1.code, 0, b1.stdout + b1.stderr)
  ctx.v1 = b1.json!.result.path
  const b2 = await ferry(['bundle', 'build', join(ctx.dir, 'v2.yaml'), '--key', pair.private, '--since', ctx.v1, '--out', join(ctx.dir, 'out'), '--store', store, '--json'])
  assert.is(b2.code, 0, b2.stdout + b2.stderr)
  ctx.delta = b2.json!.result.path

  const bundleJson = JSON.parse(execFileSync('tar', ['-xOf', ctx.delta, 'bundle.json']).toString('utf8'))
  ctx.digests = new Map(bundleJson.artifacts.filter((a: {kind: string}) => a.kind === 'image').map((a: {ref: string; digest: string}) => [a.ref, a.digest]))
  const listing = execFileSync('tar', ['-tvf', ctx.delta]).toString().trim().split('\n').filter((l) => l.includes('blobs/sha256/'))
  // the bundle's own SBOM and provenance travel too, but are not image blobs: a push leaves them out
  const documents = new Set(bundleJson.artifacts.filter((a: {kind: string}) => a.kind === 'file').map((a: {digest: string}) => a.digest))
  ctx.documents = documents.size
  ctx.carried = new Map(listing.map((l) => [`sha256:${l.split(/\s+/).pop()!.split('/').pop()}`, Number(l.split(/\s+/)[2])] as [string, number]).filter(([d]) => !documents.has(d)))
  ctx.v1Img1 = JSON.parse(execFileSync('tar', ['-xOf', ctx.v1, 'bundle.json']).toString('utf8')).artifacts.find((a: {ref: string}) => a.ref === ref('img1')).digest
  const multi = JSON.parse(await readFile(join(v1Layout, 'blobs', 'sha256', ctx.digests.get(ref('multi'))!.slice(7)), 'utf8'))
  ctx.multiChild = multi.manifests.find((m: {platform: {architecture: string}}) => m.platform.architecture === 'amd64').digest
})

test.after(async () => {
  for (const r of ctx.registries) await r.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('the delta carries only img0: its new layer, config and manifest (beside its SBOM and provenance)', () => {
  assert.is(ctx.documents, 2)
  assert.is(ctx.carried.size, 3)
  assert.ok(ctx.carried.has(ctx.digests.get(ref('img0'))!))
})

test('a delta pushed after its base sends only the changed blobs and mounts the rest', async () => {
  const site = await registry('site')
  const base = await ferry(['bundle', 'push', ctx.v1, `${site.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(base.code, 0, base.stdout + base.stderr)
  const r = await ferry(['bundle', 'push', ctx.delta, `${site.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  const res = r.json!.result
  const manifestSize = ctx.carried.get(ctx.digests.get(ref('img0'))!)!
  const layerBytes = [...ctx.carried.values()].reduce((n, s) => n + s, 0) - manifestSize
  // img0's new layer and config, once; its manifest is PUT, not uploaded as a blob
  assert.is(res.blobs.uploaded, 2)
  assert.is(res.bytes, layerBytes)
  // linked, not sent: the new layer and config into img1, img0's old layer (left out) into img1,
  // and into "copy" the shared base layer and old img1's layer and config, which only the img1
  // repository holds now that no image of the push there needs them
  assert.is(res.blobs.mounted, 6)
  assert.ok(res.blobs.present > 0)
  await assertImages(site)
})

test('a delta into a registry without its base is refused (exit 2) before anything is written', async () => {
  const fresh = await registry('fresh')
  const r = await ferry(['bundle', 'push', ctx.delta, `${fresh.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(r.code, 2, r.stdout + r.stderr)
  assert.is(r.json!.error!.code, 'DELTA_BASE_MISSING')
  const message = r.json!.error!.message
  assert.ok(!message.includes('\n'), 'one line')
  assert.match(message, /blob\(s\)/)
  assert.match(message, 'site 1.0.0')
  assert.match(message, '--base site-1.0.0.ferry.tar')
  assert.match(message, ref('img1'))
  assert.equal(await catalog(fresh), [])
  const inspected = await skopeo(['inspect', '--tls-verify=false', `docker://${fresh.host}/edge/library/img0:latest`]).then(
    () => true,
    () => false,
  )
  assert.is(inspected, false)
})

test('with --base, a delta fills a registry without its base; pushed again, it sends nothing', async () => {
  const fresh = await registry('fresh-base')
  const r = await ferry(['bundle', 'push', ctx.delta, `${fresh.host}/edge`, '--key', ctx.pub, '--base', ctx.v1, '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.ok(r.json!.result.blobs.uploaded > 2)
  await assertImages(fresh)
  const again = await ferry(['bundle', 'push', ctx.delta, `${fresh.host}/edge`, '--key', ctx.pub, '--json'])
  assert.is(again.code, 0, again.stdout + again.stderr)
  assert.is(again.json!.result.blobs.uploaded, 0)
  assert.is(again.json!.result.bytes, 0)
})

test('--base that is not the delta\'s base is refused (exit 3)', async () => {
  const fresh = await registry('wrong-base')
  const r = await ferry(['bundle', 'push', ctx.delta, `${fresh.host}/edge`, '--key', ctx.pub, '--base', ctx.delta, '--json'])
  assert.is(r.code, 3, r.stdout + r.stderr)
  assert.is(r.json!.error!.code, 'WRONG_BASE')
  assert.equal(await catalog(fresh), [])
})

test.run()
