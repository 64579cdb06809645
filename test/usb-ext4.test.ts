// `ferry usb write` on ext4 on a loop device (statfs knows the size there): no split unless asked,
// --part-size splitting of a ~100 MB bundle, the free-space check before writing, an idempotent rerun,
// and the pure parts of the media code (mountinfo, part planning).
import {mkdtemp, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {mountOf, parseMountInfo} from '../src/media/filesystem.js'
import {planParts} from '../src/media/parts-format.js'
import {ferry} from './helpers/cli.js'
import {makeExt4Stick, type MountedStick} from './helpers/fat.js'
import {makeBundleFactory, type BuiltTestBundle, type BundleFactory} from './helpers/usb-bundle.js'

const MiB = 1 << 20
const ctx = {} as {dir: string; factory: BundleFactory; stick: MountedStick; small: MountedStick; big: BuiltTestBundle}
const test = suite('usb on ext4 (loop device)')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-usb-ext4-'))
  ctx.factory = await makeBundleFactory(join(ctx.dir, 'build'))
  ctx.big = await ctx.factory.build('3.0.0', [
    {name: 'vm.vhdx', size: 64 * MiB, seed: 'vm'},
    {name: 'k3s', size: 36 * MiB, seed: 'k3s'},
  ])
  ctx.stick = await makeExt4Stick(join(ctx.dir, 'ext4'), 256)
  ctx.small = await makeExt4Stick(join(ctx.dir, 'small'), 64)
})

test.after(async () => {
  await ctx.stick?.unmount()
  await ctx.small?.unmount()
  await ctx.factory?.close()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('mountinfo: the deepest mount holding a path gives its type; escaped spaces are read', () => {
  const info = [
    '22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw',
    '42 22 0:39 / /media/usb\\040stick rw,nosuid - fuse.fusefat fusefat rw,user_id=0',
  ].join('\n')
  const mounts = parseMountInfo(info)
  assert.is(mountOf('/media/usb stick/x', mounts)?.type, 'fuse.fusefat')
  assert.is(mountOf('/media/usb', mounts)?.type, 'ext4')
})

test('parts are planned in order, the last one shorter; more than 1000 parts is refused', () => {
  assert.equal(planParts(10, 4), [{offset: 0, size: 4}, {offset: 4, size: 4}, {offset: 8, size: 2}])
  assert.equal(planParts(8, 8), [{offset: 0, size: 8}])
  assert.throws(() => planParts(1001, 1), /at most 1000/)
})

test('on ext4 a bundle is not split unless --part-size is given', async () => {
  const r = await ferry(['usb', 'write', ctx.big.path, ctx.stick.dir, '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.filesystem, 'ext4')
  assert.is(r.json!.result.parts.length, 1)
  assert.is(r.json!.result.parts[0].file, 'usb-site-3.0.0.ferry.tar.part-000')
  // one part: its sha256 is the bundle's, and parts.json gives it as such
  assert.is(r.json!.result.sha256, `sha256:${ctx.big.sha256}`)
  assert.is(r.json!.result.parts[0].sha256, `sha256:${ctx.big.sha256}`)
})

test('--part-size 8MiB splits a ~100 MB bundle into many parts, replacing the single part; it verifies', async () => {
  const r = await ferry(['usb', 'write', ctx.big.path, ctx.stick.dir, '--part-size', '8MiB', '--json'])
  assert.is(r.code, 0, r.stderr)
  const n = Math.ceil(ctx.big.size / (8 * MiB))
  assert.is(r.json!.result.parts.length, n)
  assert.ok(n >= 12)
  const parts = (await readdir(ctx.stick.dir)).filter((f) => /\.part-\d{3}$/.test(f))
  assert.is(parts.length, n)
  const v = await ferry(['bundle', 'verify', ctx.stick.dir, '--key', ctx.factory.pub, '--json'])
  assert.is(v.code, 0, v.stderr)
  assert.is(v.json!.result.bytes, ctx.big.size)
})

test('a rerun finds every part intact and writes nothing', async () => {
  const r = await ferry(['usb', 'write', ctx.big.path, ctx.stick.dir, '--part-size', '8MiB', '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.written, 0)
  assert.is(r.json!.result.kept, r.json!.result.parts.length)
})

test('not enough room: exit 6 before writing, with the bytes needed and available', async () => {
  const r = await ferry(['usb', 'write', ctx.big.path, ctx.small.dir, '--json'])
  assert.is(r.code, 6, r.stdout)
  assert.is(r.json!.error!.code, 'NO_SPACE')
  assert.match(r.json!.error!.message, /\d+ bytes needed, \d+ available/)
  const names = (await readdir(ctx.small.dir)).filter((n) => n !== 'lost+found')
  assert.equal(names, [])
})

test('bad --part-size values are usage errors', async () => {
  for (const size of ['lots', '0']) {
    const r = await ferry(['usb', 'write', ctx.big.path, ctx.stick.dir, '--part-size', size])
    assert.is(r.code, 2, `${size}: ${r.stderr}`)
  }
  const many = await ferry(['usb', 'write', ctx.big.path, ctx.stick.dir, '--part-size', '64K'])
  assert.is(many.code, 2, many.stderr)
})

test.run()
