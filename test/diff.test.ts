// `ferry bundle diff` on two real bundles built from generated OCI layouts.
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {makeImages} from './helpers/registry.js'

const ctx = {} as {dir: string; a: string; b: string}
const test = suite('diff')

async function bundle(name: string, version: string, images: string[], priv: string): Promise<string> {
  const m = join(ctx.dir, `${version}.yaml`)
  await writeFile(m, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: ${name}, version: ${version}}\nspec:\n  images: [${images.join(', ')}]\n`)
  const r = await ferry(['bundle', 'build', m, '--key', priv, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  return r.json!.result.path
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-diff-'))
  makeImages(join(ctx.dir, 'one'), 3, 1, 0.2, 0.1)
  makeImages(join(ctx.dir, 'two'), 1, 1, 0.2, 0.1)
  const priv = (await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))).private
  ctx.a = await bundle('site', '1.0.0', ['oci:one:img0', 'oci:one:img1'], priv)
  ctx.b = await bundle('site', '1.1.0', ['oci:two:img0', 'oci:one:img1', 'oci:one:img2'], priv)
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('diff names added, removed and changed images and the bytes a delta carries', async () => {
  const r = await ferry(['bundle', 'diff', ctx.a, ctx.b, '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  const d = r.json!.result
  assert.equal(d.images.added.map((c: {name: string}) => c.name), ['docker.io/library/img2:latest'])
  assert.equal(d.images.removed, [])
  assert.equal(d.images.changed.map((c: {name: string}) => c.name), ['docker.io/library/img0:latest'])
  // img1 and its layers are in both: the delta carries only img0's new blobs and img2's.
  assert.ok(d.delta.bytes > 0 && d.delta.bytes < d.full.bytes, JSON.stringify(d.delta))
  const back = await ferry(['bundle', 'diff', ctx.b, ctx.a, '--json'])
  assert.equal(back.json!.result.images.removed.map((c: {name: string}) => c.name), ['docker.io/library/img2:latest'])
  const human = await ferry(['bundle', 'diff', ctx.a, ctx.b])
  assert.match(human.stdout, /\+ docker\.io\/library\/img2:latest/)
  assert.match(human.stdout, /a delta would carry \d+ blob/)
})

test.run()
