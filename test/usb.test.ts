// `ferry usb write|verify|list` on a real FAT32 image mounted with fusefat: splitting, read-back, bundles
// read from the stick as one stream, damaged/missing/swapped parts, an edited parts.json, a full stick,
// and a stick pulled in the middle of a write.
import {readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {makeFatStick, type FatStick} from './helpers/fat.js'
import {makeBundleFactory, type BuiltTestBundle, type BundleFactory} from './helpers/usb-bundle.js'

const MiB = 1 << 20
const ctx = {} as {dir: string; factory: BundleFactory; stick: FatStick; a: BuiltTestBundle; b: BuiltTestBundle; c: BuiltTestBundle}
const test = suite('usb on FAT32 (fusefat)')

const part = (bundle: BuiltTestBundle, i: number) => `${bundle.path.split('/').pop()}.part-${String(i).padStart(3, '0')}`
const partsJson = (bundle: BuiltTestBundle) => join(ctx.stick.dir, `${bundle.path.split('/').pop()}.parts.json`)

/** fusefat refuses to overwrite a file in place: replace it through a new file and a rename, as a technician's copy would. */
async function replaceOnStick(name: string, bytes: Buffer) {
  const temp = join(ctx.stick.dir, `x-${name}`)
  await writeFile(temp, bytes)
  await rename(temp, join(ctx.stick.dir, name))
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-usb-'))
  ctx.factory = await makeBundleFactory(join(ctx.dir, 'build'))
  ctx.a = await ctx.factory.build('1.0.0', [
    {name: 'a.bin', size: 6 * MiB, seed: 'a1'},
    {name: 'b.bin', size: 6 * MiB, seed: 'b1'},
  ])
  ctx.b = await ctx.factory.build('1.1.0', [
    {name: 'a.bin', size: 6 * MiB, seed: 'a1'},
    {name: 'b.bin', size: 6 * MiB, seed: 'b2'},
  ])
  ctx.c = await ctx.factory.build('2.0.0', [{name: 'c.bin', size: 30 * MiB, seed: 'c1'}])
  ctx.stick = await makeFatStick(join(ctx.dir, 'fat'), 48)
})

test.after(async () => {
  await ctx.stick?.unmount()
  await ctx.factory?.close()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('usb write detects FAT32 through mountinfo, splits into numbered parts, writes parts.json and reads back', async () => {
  const r = await ferry(['usb', 'write', ctx.a.path, ctx.stick.dir, '--part-size', '5MiB', '--json'])
  assert.is(r.code, 0, r.stderr)
  const res = r.json!.result
  assert.is(res.filesystem, 'fuse.fusefat')
  assert.is(res.verified, true)
  assert.is(res.parts.length, Math.ceil(ctx.a.size / (5 * MiB)))
  assert.is(res.parts[0].file, part(ctx.a, 0))
  // several parts: each part's sha256 covers its bytes; the whole bundle's is not hashed again
  assert.is(res.sha256, undefined)
  const names = await readdir(ctx.stick.dir)
  assert.ok(!names.some((n) => n.endsWith('.partial')), names.join(' '))
  const joined = Buffer.concat(await Promise.all(res.parts.map((p: {file: string}) => readFile(join(ctx.stick.dir, p.file)))))
  assert.ok(joined.equals(await readFile(ctx.a.path)))
  const written = JSON.parse(await readFile(partsJson(ctx.a), 'utf8'))
  assert.is(written.schema, 'ferry.parts/v1')
  assert.is(written.name, 'usb-site')
  assert.is(written.version, '1.0.0')
  assert.is(written.size, ctx.a.size)
  assert.is(written.sha256, undefined)
})

test('without --part-size a FAT32 stick still gets .part-000 and a parts.json', async () => {
  const r = await ferry(['usb', 'write', ctx.b.path, ctx.stick.dir, '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.equal(r.json!.result.parts.map((p: {file: string}) => p.file), [part(ctx.b, 0)])
  assert.is(r.json!.result.partSize, 4095 * MiB)
})

test('two bundles share the stick: usb list shows both, bundle verify reads each from its parts as one stream', async () => {
  const list = await ferry(['usb', 'list', ctx.stick.dir, '--json'])
  assert.is(list.code, 0, list.stderr)
  assert.equal(list.json!.result.bundles.map((b: {version: string; complete: boolean}) => [b.version, b.complete]), [['1.0.0', true], ['1.1.0', true]])
  const several = await ferry(['bundle', 'verify', ctx.stick.dir, '--key', ctx.factory.pub])
  assert.is(several.code, 2, several.stderr)
  assert.match(several.stderr, 'several bundles')
  for (const target of [join(ctx.stick.dir, 'usb-site-1.0.0.ferry.tar'), partsJson(ctx.a), join(ctx.stick.dir, 'usb-site-1.1.0')]) {
    const r = await ferry(['bundle', 'verify', target, '--key', ctx.factory.pub, '--json'])
    assert.is(r.code, 0, `${target}: ${r.stderr}${r.stdout}`)
  }
  const inspect = await ferry(['bundle', 'inspect', partsJson(ctx.b), '--json'])
  assert.is(inspect.code, 0, inspect.stderr)
  const v = await ferry(['usb', 'verify', ctx.stick.dir, '--json'])
  assert.is(v.code, 0, v.stderr)
  assert.is(v.json!.result.bundles.length, 2)
})

test('a bit flipped in one part on the stick: usb verify and bundle verify refuse it (exit 3), naming the part', async () => {
  const name = part(ctx.a, 1)
  const original = await readFile(join(ctx.stick.dir, name))
  const bad = Buffer.from(original)
  bad[12345] ^= 0x01
  await replaceOnStick(name, bad)
  try {
    const r = await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0.ferry.tar', '--json'])
    assert.is(r.code, 3, r.stdout)
    assert.match(r.json!.error!.message, name)
    const b = await ferry(['bundle', 'verify', partsJson(ctx.a), '--key', ctx.factory.pub])
    assert.is(b.code, 3, b.stderr)
  } finally {
    await replaceOnStick(name, original)
  }
  assert.is((await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0'])).code, 0)
})

test('a missing part is named (exit 3), by usb verify, usb list and bundle verify', async () => {
  const name = part(ctx.a, 2)
  await rename(join(ctx.stick.dir, name), join(ctx.stick.dir, 'moved-away'))
  try {
    const r = await ferry(['usb', 'verify', ctx.stick.dir, '--json'])
    assert.is(r.code, 3)
    assert.match(r.json!.error!.message, `${name} is missing`)
    // a stick with an incomplete bundle is not ready: exit 3, the listing still in the envelope
    const list = await ferry(['usb', 'list', ctx.stick.dir, '--json'])
    assert.is(list.code, 3, list.stdout)
    assert.is(list.json!.status, 3)
    assert.is(list.json!.error!.code, 'INCOMPLETE_BUNDLE')
    assert.match(list.json!.error!.message, 'usb-site-1.0.0.ferry.tar')
    assert.is(list.json!.result.bundles[0].complete, false)
    const plain = await ferry(['usb', 'list', ctx.stick.dir])
    assert.is(plain.code, 3)
    assert.match(plain.stdout, /INCOMPLETE usb-site-1\.0\.0\.ferry\.tar: .*is missing/)
    assert.match(plain.stderr, /^ferry: 1 of 2 bundle\(s\) on .* is incomplete: usb-site-1\.0\.0\.ferry\.tar;/)
    const b = await ferry(['bundle', 'verify', partsJson(ctx.a), '--key', ctx.factory.pub])
    assert.is(b.code, 3)
    assert.match(b.stderr, name)
  } finally {
    await rename(join(ctx.stick.dir, 'moved-away'), join(ctx.stick.dir, name))
  }
})

test('a part swapped in from another bundle of the same part size is refused, naming the part', async () => {
  // Write 1.1.0 with the same part size so its parts could be mistaken for 1.0.0's.
  const w = await ferry(['usb', 'write', ctx.b.path, ctx.stick.dir, '--part-size', '5MiB', '--json'])
  assert.is(w.code, 0, w.stderr)
  const name = part(ctx.a, 1)
  const original = await readFile(join(ctx.stick.dir, name))
  await replaceOnStick(name, await readFile(join(ctx.stick.dir, part(ctx.b, 1))))
  try {
    assert.is((await stat(join(ctx.stick.dir, name))).size, original.length)
    const r = await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0.ferry.tar', '--json'])
    assert.is(r.code, 3)
    assert.match(r.json!.error!.message, name)
  } finally {
    await replaceOnStick(name, original)
  }
})

test('a parts.json from an earlier writer, with the whole bundle sha256 for several parts, is still checked against it', async () => {
  const path = partsJson(ctx.a)
  const name = path.split('/').pop()!
  const original = await readFile(path)
  const older = JSON.parse(original.toString('utf8'))
  try {
    older.sha256 = `sha256:${ctx.a.sha256}`
    await replaceOnStick(name, Buffer.from(JSON.stringify(older, null, 2)))
    const ok = await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0', '--json'])
    assert.is(ok.code, 0, ok.stdout)
    assert.is(ok.json!.result.bundles[0].sha256, older.sha256)
    older.sha256 = `sha256:${'1'.repeat(64)}`
    await replaceOnStick(name, Buffer.from(JSON.stringify(older, null, 2)))
    const bad = await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0', '--json'])
    assert.is(bad.code, 3)
    assert.match(bad.json!.error!.message, /parts file was altered/)
    const joined = await ferry(['bundle', 'verify', path, '--key', ctx.factory.pub, '--json'])
    assert.is(joined.code, 3)
    assert.is(joined.json!.error!.code, 'BUNDLE_DIGEST_MISMATCH')
  } finally {
    await replaceOnStick(name, original)
  }
})

test('a parts.json whose hashes were edited is refused, naming the part it misdescribes', async () => {
  const path = partsJson(ctx.a)
  const original = await readFile(path)
  const edited = JSON.parse(original.toString('utf8'))
  edited.parts[0].sha256 = `sha256:${'0'.repeat(64)}`
  await replaceOnStick(path.split('/').pop()!, Buffer.from(JSON.stringify(edited, null, 2)))
  try {
    const r = await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0', '--json'])
    assert.is(r.code, 3)
    assert.match(r.json!.error!.message, part(ctx.a, 0))
    const b = await ferry(['bundle', 'verify', path, '--key', ctx.factory.pub])
    assert.is(b.code, 3)
  } finally {
    await replaceOnStick(path.split('/').pop()!, original)
  }
})

test('a full stick (fusefat answers EPERM) is exit 6, and the bundle does not look complete', async () => {
  const r = await ferry(['usb', 'write', ctx.c.path, ctx.stick.dir, '--part-size', '8MiB', '--json'])
  assert.is(r.code, 6, r.stdout)
  assert.match(r.json!.error!.message, 'full')
  const names = await readdir(ctx.stick.dir)
  assert.not.ok(names.includes('usb-site-2.0.0.ferry.tar.parts.json'))
  assert.not.ok(names.some((n) => n.endsWith('.partial')), names.join(' '))
  const list = await ferry(['usb', 'list', ctx.stick.dir, '--json'])
  assert.is(list.code, 3, list.stdout)
  const c = list.json!.result.bundles.find((b: {bundle: string}) => b.bundle === 'usb-site-2.0.0.ferry.tar')
  assert.is(c.complete, false)
  // the other bundles on the stick are untouched
  assert.is((await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.0.0'])).code, 0)
  for (const n of names) if (n.startsWith('usb-site-2.0.0')) await rm(join(ctx.stick.dir, n))
})

test('a stick pulled mid-write: exit 6, no parts.json; after remounting, a rerun keeps the intact parts and completes', async () => {
  for (const n of await readdir(ctx.stick.dir)) if (n.startsWith('usb-site-1.1.0')) await rm(join(ctx.stick.dir, n))
  const run = ferry(['usb', 'write', ctx.b.path, ctx.stick.dir, '--part-size', '2MiB', '--json'])
  const third = join(ctx.stick.dir, part(ctx.b, 2))
  for (let i = 0; i < 400 && !(await stat(third).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 10))
  ctx.stick.pull()
  const r = await run
  assert.is(r.code, 6, r.stdout)
  assert.match(r.json!.error!.message, 'usb-site-1.1.0.ferry.tar')
  await ctx.stick.remount()
  const names = await readdir(ctx.stick.dir)
  assert.not.ok(names.includes('usb-site-1.1.0.ferry.tar.parts.json'))
  assert.is((await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.1.0'])).code, 3)
  const again = await ferry(['usb', 'write', ctx.b.path, ctx.stick.dir, '--part-size', '2MiB', '--json'])
  assert.is(again.code, 0, again.stderr)
  assert.ok(again.json!.result.kept >= 1, JSON.stringify(again.json!.result))
  assert.ok(again.json!.result.written < ctx.b.size)
  assert.is((await ferry(['usb', 'verify', ctx.stick.dir, 'usb-site-1.1.0'])).code, 0)
  assert.is((await ferry(['bundle', 'verify', join(ctx.stick.dir, 'usb-site-1.1.0'), '--key', ctx.factory.pub])).code, 0)
})

test.run()
