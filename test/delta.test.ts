// Delta bundles: `bundle build --since OLD` (a bundle, its lock, or its parts on a stick) carries only the
// blobs OLD lacks and names OLD as its base; `bundle verify` refuses a delta without `--base` and checks the
// omitted blobs in the base. v2 changes one file; `factory.build(…, {images})` takes image references too,
// so a changed image layer is one more entry in V1/V2.
import {createHash} from 'node:crypto'
import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {layoutWithNewLayer, makeImages} from './helpers/registry.js'
import {makeBundleFactory, type BuiltTestBundle, type BundleFactory, type TestFile} from './helpers/usb-bundle.js'

const MiB = 1 << 20
const V1: TestFile[] = [
  {name: 'vm.vhdx', size: 12 * MiB, seed: 'vm-1'},
  {name: 'k3s', size: 6 * MiB, seed: 'k3s-1'},
  {name: 'site-config.tar.gz', size: 256 * 1024, seed: 'cfg-1'},
]
// v2 changes one file; everything else is the same blob.
const V2: TestFile[] = V1.map((f) => (f.name === 'site-config.tar.gz' ? {...f, size: 300 * 1024, seed: 'cfg-2'} : f))
const CHANGED = V2.filter((f) => !V1.some((o) => o.seed === f.seed))

const ctx = {} as {dir: string; factory: BundleFactory; v1: BuiltTestBundle; v2Lock: string; other: BuiltTestBundle; delta: string; deltaJson: any; newBlobs: string[]}
const test = suite('delta bundles')
const store = () => join(ctx.factory.dir, 'store')
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')
const bundleJsonOf = (path: string) => execFileSync('tar', ['-xOf', path, 'bundle.json'])

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-delta-'))
  ctx.factory = await makeBundleFactory(join(ctx.dir, 'build'))
  ctx.v1 = await ctx.factory.build('1.0.0', V1, {outDir: join(ctx.dir, 'v1')})
  ctx.other = await ctx.factory.build('0.9.0', V1.slice(1), {outDir: join(ctx.dir, 'other')})
  const full = await ctx.factory.build('2.0.0', V2, {outDir: join(ctx.dir, 'full')})
  ctx.v2Lock = full.lockPath
  const blobsOf = (path: string) => new Set(execFileSync('tar', ['-tf', path]).toString().trim().split('\n').filter((n) => n.startsWith('blobs/')))
  const old = blobsOf(ctx.v1.path)
  ctx.newBlobs = [...blobsOf(full.path)].filter((b) => !old.has(b))
})

test.after(async () => {
  await ctx.factory?.close()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('build --since v1 carries only the changed blobs, lists every artifact, and names v1 as its base', async () => {
  const r = await ferry(['bundle', 'build', ctx.v2Lock, '--key', ctx.factory.priv, '--since', ctx.v1.path, '--out', join(ctx.dir, 'delta'), '--store', store(), '--json'])
  assert.is(r.code, 0, r.stderr)
  ctx.delta = r.json!.result.path
  assert.ok(ctx.delta.endsWith('usb-site-2.0.0-from-1.0.0.ferry.tar'), ctx.delta)
  const newBytes = ctx.newBlobs.reduce((n, b) => n + Number(execFileSync('tar', ['-xOf', join(ctx.dir, 'full', 'usb-site-2.0.0.ferry.tar'), b]).length), 0)
  const changedBytes = Math.max(newBytes, CHANGED.reduce((n, f) => n + f.size, 0))
  assert.ok(r.json!.result.size <= changedBytes + MiB, `${r.json!.result.size} > ${changedBytes} + 1 MiB`)
  const m = JSON.parse(bundleJsonOf(ctx.delta).toString('utf8'))
  ctx.deltaJson = m
  // V2's artifacts, then the SBOM and the provenance
  assert.is(m.artifacts.length, V2.length + 2)
  assert.equal(m.base, {name: 'usb-site', version: '1.0.0', digest: sha(bundleJsonOf(ctx.v1.path))})
  const unchangedFiles = m.artifacts.filter((a: {kind: string; name: string; source: string}) => a.kind === 'file' && a.source !== 'ferry:generated' && !CHANGED.some((c) => a.name === `files/${c.name}`))
  for (const a of unchangedFiles) assert.ok(m.omitted.includes(a.digest), a.name)
  // exactly the blobs v1 lacks
  const blobs = execFileSync('tar', ['-tf', ctx.delta]).toString().trim().split('\n').filter((n) => n.startsWith('blobs/'))
  assert.equal(blobs.sort(), [...ctx.newBlobs].sort())
  // and the new version's SBOM and provenance
  assert.is(blobs.length, CHANGED.length + 2)
})

test('bundle verify refuses a delta without --base (exit 3), naming the missing blobs', async () => {
  const r = await ferry(['bundle', 'verify', ctx.delta, '--key', ctx.factory.pub, '--json'])
  assert.is(r.code, 3)
  assert.is(r.json!.error!.code, 'DELTA_WITHOUT_BASE')
  assert.match(r.json!.error!.message, ctx.deltaJson.omitted[0])
})

test('bundle verify --base v1 checks the omitted blobs in v1 and passes', async () => {
  const r = await ferry(['bundle', 'verify', ctx.delta, '--key', ctx.factory.pub, '--base', ctx.v1.path, '--json'])
  assert.is(r.code, 0, r.stderr + r.stdout)
  assert.is(r.json!.result.base.version, '1.0.0')
})

test('bundle verify --base with another bundle is refused (exit 3)', async () => {
  const r = await ferry(['bundle', 'verify', ctx.delta, '--key', ctx.factory.pub, '--base', ctx.other.path, '--json'])
  assert.is(r.code, 3)
  assert.is(r.json!.error!.code, 'WRONG_BASE')
})

test('a damaged base is refused by verify --base (exit 3)', async () => {
  const bytes = await readFile(ctx.v1.path)
  bytes[bytes.length - 2048 - 100] ^= 0x01
  const damaged = join(ctx.dir, 'damaged', 'usb-site-1.0.0.ferry.tar')
  execFileSync('mkdir', ['-p', join(ctx.dir, 'damaged')])
  await writeFile(damaged, bytes)
  const r = await ferry(['bundle', 'verify', ctx.delta, '--key', ctx.factory.pub, '--base', damaged, '--json'])
  assert.is(r.code, 3, r.stdout)
  assert.is(r.json!.error!.code, 'BASE_CORRUPT')
})

test('--since v1.lock.json gives the same delta, byte for byte, as --since the v1 bundle', async () => {
  const r = await ferry(['bundle', 'build', ctx.v2Lock, '--key', ctx.factory.priv, '--since', ctx.v1.lockPath, '--out', join(ctx.dir, 'delta-lock'), '--store', store(), '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.ok((await readFile(r.json!.result.path)).equals(await readFile(ctx.delta)))
})

test('the base can be read from a stick folder written by usb write, to verify and to build', async () => {
  const stick = join(ctx.dir, 'stick')
  execFileSync('mkdir', ['-p', stick])
  const w = await ferry(['usb', 'write', ctx.v1.path, stick, '--part-size', '4MiB'])
  assert.is(w.code, 0, w.stderr)
  const r = await ferry(['bundle', 'verify', ctx.delta, '--key', ctx.factory.pub, '--base', stick])
  assert.is(r.code, 0, r.stderr)
  // build --since reads the parts where they lie (headers and chunk indexes only): the same delta
  const b = await ferry(['bundle', 'build', ctx.v2Lock, '--key', ctx.factory.priv, '--since', stick, '--out', join(ctx.dir, 'delta-stick'), '--store', store(), '--json'])
  assert.is(b.code, 0, b.stderr)
  assert.ok((await readFile(b.json!.result.path)).equals(await readFile(ctx.delta)))
})

test('one changed image layer and one changed file: the delta carries just those blobs and the new image documents', async () => {
  // v1: an image made by code; v2: the same image with one layer added by umoci (the others unchanged).
  const v1Layout = join(ctx.dir, 'img-v1')
  const v2Layout = join(ctx.dir, 'img-v2')
  makeImages(v1Layout, 1, 2, 3, 2)
  await layoutWithNewLayer(v1Layout, v2Layout, 'img0', MiB)
  const v1 = await ctx.factory.build('3.0.0', V1, {outDir: join(ctx.dir, 'img-b1'), images: [`oci:${v1Layout}:img0`]})
  const full = await ctx.factory.build('4.0.0', V2, {outDir: join(ctx.dir, 'img-b2'), images: [`oci:${v2Layout}:img0`]})
  const blobsOf = (path: string) => new Map(execFileSync('tar', ['-tvf', path]).toString().trim().split('\n').filter((l) => l.includes('blobs/sha256/')).map((l) => [l.split(/\s+/).pop()!, Number(l.split(/\s+/)[2])]))
  const old = blobsOf(v1.path)
  const fresh = [...blobsOf(full.path)].filter(([b]) => !old.has(b))
  const changedBytes = fresh.reduce((n, [, size]) => n + size, 0)
  const r = await ferry(['bundle', 'build', full.lockPath, '--key', ctx.factory.priv, '--since', v1.path, '--out', join(ctx.dir, 'img-delta'), '--store', store(), '--json'])
  assert.is(r.code, 0, r.stderr)
  const carried = [...blobsOf(r.json!.result.path).keys()].sort()
  assert.equal(carried, fresh.map(([b]) => b).sort())
  // the new layer, the new config, the new manifest, the changed file, the SBOM and the provenance
  assert.is(carried.length, 6)
  assert.ok(r.json!.result.size <= changedBytes + MiB, `${r.json!.result.size} > ${changedBytes} + 1 MiB`)
  const m = JSON.parse(bundleJsonOf(r.json!.result.path).toString('utf8'))
  assert.ok(m.omitted.length >= 4, 'unchanged layers and files are omitted')
  const ok = await ferry(['bundle', 'verify', r.json!.result.path, '--key', ctx.factory.pub, '--base', v1.path, '--json'])
  assert.is(ok.code, 0, ok.stdout + ok.stderr)
  const refused = await ferry(['bundle', 'verify', r.json!.result.path, '--key', ctx.factory.pub, '--json'])
  assert.is(refused.code, 3)
})

test.run()
