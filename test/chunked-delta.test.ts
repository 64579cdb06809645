// Chunked deltas end to end through the `ferry` binary: real VHDX and qcow2 images made by qemu-img,
// changed at random places, and a big file with bytes inserted; the delta carries only the new
// chunks, `bundle verify --base` rebuilds each image, and a device running the base rebuilds and
// stages them. Failures: a flipped pack byte, another base, a corrupt base copy on the device, and
// a kill during the rebuild.
import {createHash, randomBytes, randomInt} from 'node:crypto'
import {execFileSync} from 'node:child_process'
import {open, mkdtemp, readFile, rm, stat, writeFile, chmod} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import {readState, writeState} from '../src/device/journal.js'
import {slotDir} from '../src/device/paths.js'
import {raiseFloor} from '../src/device/trust-store.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {deviceSnapshot, makeDevice, type TestDevice} from './helpers/device.js'

const MiB = 1 << 20
const test = suite('chunked deltas')
const ctx = {} as {
  dir: string
  server: FileServer
  pub: string
  priv: string
  v1: {path: string; json: any}
  v2: {path: string; json: any}
  other: {path: string}
  delta: {path: string; json: any}
  changed: number
  digests: Map<string, string>
}
const up = (name: string) => join(ctx.dir, 'upstream', name)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const shaFile = async (p: string) => sha(await readFile(p))
const bundleJson = (path: string) => JSON.parse(execFileSync('tar', ['-xOf', path, 'bundle.json']).toString())

/** A disk-like raw image: runs of zeros between random data, as a filesystem leaves them. */
function rawDisk(size: number): Buffer {
  const raw = Buffer.alloc(size)
  for (let at = 0; at < size; at += 4 * MiB) randomBytes(3 * MiB).copy(raw, at)
  return raw
}

/** Overwrites `count` runs of `len` bytes at random places; returns the bytes changed. */
function scatter(raw: Buffer, count: number, len: number): number {
  for (let i = 0; i < count; i++) randomBytes(len).copy(raw, randomInt(0, raw.length - len))
  return count * len
}

async function image(name: string, raw: Buffer, format: 'vhdx' | 'qcow2'): Promise<void> {
  const rawPath = up(`${name}.raw`)
  await writeFile(rawPath, raw)
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', format, rawPath, up(name)])
  await rm(rawPath)
}

async function manifest(version: string, files: {vhdx: string; qcow2: string; big: string}): Promise<string> {
  const url = (f: string) => `${ctx.server.url}/${f}`
  const path = join(ctx.dir, `site-${version}.yaml`)
  await writeFile(
    path,
    `apiVersion: ferry/v1
kind: Bundle
metadata: {name: site, version: ${version}}
spec:
  platforms: [linux/amd64]
  expiresIn: 30d
  vm:
    - {name: edge, url: ${url(files.vhdx)}, sha256: ${await shaFile(up(files.vhdx))}}
    - {name: tools, url: ${url(files.qcow2)}, sha256: ${await shaFile(up(files.qcow2))}}
  files:
    - {url: ${url(files.big)}, sha256: ${await shaFile(up(files.big))}, dest: files/data.bin, name: data.bin, delta: chunks}
`,
  )
  return path
}

async function build(version: string, files: {vhdx: string; qcow2: string; big: string}, extra: string[] = []) {
  const r = await ferry(['bundle', 'build', await manifest(version, files), '--key', ctx.priv, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store'), '--json', ...extra])
  assert.is(r.code, 0, r.stdout + r.stderr)
  return {path: r.json!.result.path as string, json: r.json!.result}
}

const importCli = (bundle: string, dev: TestDevice, env: Record<string, string> = {}) => ferry(['device', 'import', bundle, '--root', dev.root, '--json'], {env})

async function deviceOnV1(name: string, bundle = ctx.v1.path, version = '1.0.0'): Promise<TestDevice> {
  const dev = await makeDevice(join(ctx.dir, 'devices', name))
  assert.is((await ferry(['device', 'trust', 'add', ctx.pub, '--root', dev.root])).code, 0)
  const r = await importCli(bundle, dev)
  assert.is(r.code, 0, r.stdout + r.stderr)
  // as apply's commit leaves it: that release runs
  const s = await readState(dev.paths)
  await writeState(dev.paths, {...s, state: 'committed', current: s.staged, staged: undefined})
  await raiseFloor(dev.paths, 'site', version)
  return dev
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-chunked-'))
  execFileSync('mkdir', ['-p', join(ctx.dir, 'upstream')])
  ctx.server = await startFileServer({root: join(ctx.dir, 'upstream')})
  const keys = await writeKeyPair(join(ctx.dir, 'keys'), 'release', await generateKeyPair({name: 'Release', date: new Date(Date.now() - 3600_000)}))
  ctx.pub = keys.public
  ctx.priv = keys.private
  const vhdx = rawDisk(48 * MiB)
  const qcow = rawDisk(24 * MiB)
  const big = randomBytes(12 * MiB)
  await image('edge-1.vhdx', vhdx, 'vhdx')
  await image('tools-1.qcow2', qcow, 'qcow2')
  await writeFile(up('data-1.bin'), big)
  ctx.v1 = await build('1.0.0', {vhdx: 'edge-1.vhdx', qcow2: 'tools-1.qcow2', big: 'data-1.bin'})
  ctx.changed = scatter(vhdx, 6, 256 * 1024) + scatter(qcow, 3, 128 * 1024)
  const at = randomInt(0, big.length)
  const inserted = randomBytes(256 * 1024)
  ctx.changed += inserted.length
  await image('edge-2.vhdx', vhdx, 'vhdx')
  await image('tools-2.qcow2', qcow, 'qcow2')
  await writeFile(up('data-2.bin'), Buffer.concat([big.subarray(0, at), inserted, big.subarray(at)]))
  const v2files = {vhdx: 'edge-2.vhdx', qcow2: 'tools-2.qcow2', big: 'data-2.bin'}
  ctx.delta = await build('2.0.0', v2files, ['--since', ctx.v1.path])
  ctx.v2 = await build('2.0.0', v2files)
  ctx.digests = new Map([['vm/edge', await shaFile(up('edge-2.vhdx'))], ['vm/tools', await shaFile(up('tools-2.qcow2'))], ['files/data.bin', await shaFile(up('data-2.bin'))]])
  await image('edge-0.vhdx', rawDisk(8 * MiB), 'vhdx')
  ctx.other = await build('0.9.0', {vhdx: 'edge-0.vhdx', qcow2: 'tools-1.qcow2', big: 'data-1.bin'})
})

test.after(async () => {
  await ctx.server?.close()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('a full bundle carries a signed chunk index per chunked artifact', async () => {
  const m = bundleJson(ctx.v1.path)
  for (const name of ['vm/edge', 'vm/tools', 'files/data.bin']) {
    const a = m.artifacts.find((x: any) => x.name === name)
    assert.ok(a.chunks, `${name} has no chunk index`)
    assert.ok(a.chunks.count > 10)
    const names = execFileSync('tar', ['-tf', ctx.v1.path]).toString()
    assert.ok(names.includes(`blobs/sha256/${a.chunks.index.slice(7)}`))
  }
})

test('the delta carries only the new chunks: upstream digests kept, size near the changed bytes', async () => {
  const m = bundleJson(ctx.delta.path)
  for (const [name, digest] of ctx.digests) {
    const a = m.artifacts.find((x: any) => x.name === name)
    assert.is(a.digest, `sha256:${digest}`, `${name} keeps its upstream sha256`)
    assert.ok(a.delta, `${name} is carried as chunks`)
    assert.is(a.delta.index, a.chunks.index)
    const names = execFileSync('tar', ['-tf', ctx.delta.path]).toString()
    assert.not.ok(names.includes(digest), `${name} itself is not in the delta`)
  }
  const report = ctx.delta.json.chunked
  assert.is(report.length, 3)
  for (const r of report) {
    assert.is(r.carried, 'chunks')
    assert.ok(r.reused > 0 && r.reused < r.chunks)
  }
  const newBytes = report.reduce((n: number, r: any) => n + r.newBytes, 0)
  // qemu-img may move metadata too; a chunk either side of each change is the most a change drags along
  assert.ok(newBytes < ctx.changed * 1.2 + 10 * 2 * 256 * 1024, `${newBytes} new bytes for ${ctx.changed} changed`)
  assert.ok(ctx.delta.json.size < (await stat(ctx.v2.path)).size / 5)
})

test('bundle verify rebuilds each chunked artifact against its base; without the base it is exit 3', async () => {
  const ok = await ferry(['bundle', 'verify', ctx.delta.path, '--key', ctx.pub, '--base', ctx.v1.path, '--json'])
  assert.is(ok.code, 0, ok.stdout + ok.stderr)
  assert.is(ok.json!.result.rebuilt, 3)
  const without = await ferry(['bundle', 'verify', ctx.delta.path, '--key', ctx.pub, '--json'])
  assert.is(without.code, 3)
  assert.is(without.json!.error!.code, 'DELTA_WITHOUT_BASE')
})

test('a delta against another base is exit 3, in verify and on a device running that base', async () => {
  const r = await ferry(['bundle', 'verify', ctx.delta.path, '--key', ctx.pub, '--base', ctx.other.path, '--json'])
  assert.is(r.code, 3)
  assert.is(r.json!.error!.code, 'WRONG_BASE')
  const dev = await deviceOnV1('other-base', ctx.other.path, '0.9.0')
  const before = await deviceSnapshot(dev.paths)
  const i = await importCli(ctx.delta.path, dev)
  assert.is(i.code, 3, i.stdout + i.stderr)
  assert.is(await deviceSnapshot(dev.paths), before, 'the device changed')
  assert.is((await ferry(['device', 'status', '--root', dev.root, '--json'])).json!.result.current.version, '0.9.0')
})

test('a flipped byte in a pack is exit 3', async () => {
  const m = bundleJson(ctx.delta.path)
  const pack = m.artifacts.find((x: any) => x.name === 'vm/edge').delta.pack.slice(7)
  const listing = execFileSync('tar', ['-tvf', ctx.delta.path, '--full-time']).toString()
  assert.ok(listing.includes(pack))
  // find the pack's bytes in the archive by its tar header
  const bytes = await readFile(ctx.delta.path)
  const header = bytes.indexOf(Buffer.from(`blobs/sha256/${pack}`))
  const bad = join(ctx.dir, 'flipped.ferry.tar')
  bytes[header + 512 + 1000] ^= 0x40
  await writeFile(bad, bytes)
  const r = await ferry(['bundle', 'verify', bad, '--key', ctx.pub, '--base', ctx.v1.path, '--json'])
  assert.is(r.code, 3, r.stdout)
  const dev = await deviceOnV1('flipped')
  const before = await deviceSnapshot(dev.paths)
  const i = await importCli(bad, dev)
  assert.is(i.code, 3, i.stdout)
  assert.is(await deviceSnapshot(dev.paths), before)
})

test('a device running the base rebuilds the images from its copies and stages them: digests equal upstream', async () => {
  const dev = await deviceOnV1('good')
  const r = await importCli(ctx.delta.path, dev)
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.is(r.json!.result.status, 'staged')
  const slot = slotDir(dev.paths, r.json!.result.slot)
  assert.is(await shaFile(join(slot, 'vm', 'edge-2.vhdx')), ctx.digests.get('vm/edge'))
  assert.is(await shaFile(join(slot, 'vm', 'tools-2.qcow2')), ctx.digests.get('vm/tools'))
  assert.is(await shaFile(join(slot, 'files', 'data.bin')), ctx.digests.get('files/data.bin'))
  // the index stays beside the blob, for the next delta
  const m = bundleJson(ctx.delta.path)
  for (const a of m.artifacts.filter((x: any) => x.chunks)) await stat(join(dev.paths.blobs, 'sha256', a.chunks.index.slice(7)))
  execFileSync('qemu-img', ['check', join(slot, 'vm', 'tools-2.qcow2')])
})

test('a corrupt or missing base copy on the device is exit 3 naming the artifact; nothing changes', async () => {
  const dev = await deviceOnV1('corrupt')
  const edge = bundleJson(ctx.v1.path).artifacts.find((x: any) => x.name === 'vm/edge')
  const blob = join(dev.paths.blobs, 'sha256', edge.digest.slice(7))
  await chmod(blob, 0o644)
  const fh = await open(blob, 'r+')
  // a few bytes every 4 MiB: some chunk the rebuild reads is hit
  for (let at = 17; at < edge.size; at += 4 * MiB) await fh.write(Buffer.from('garbage!'), 0, 8, at)
  await fh.close()
  const before = await deviceSnapshot(dev.paths)
  const r = await importCli(ctx.delta.path, dev)
  assert.is(r.code, 3, r.stdout)
  assert.is(r.json!.error!.code, 'BASE_CORRUPT')
  assert.match(r.json!.error!.message, /vm\/edge/)
  assert.is(await deviceSnapshot(dev.paths), before, 'the device changed')
  assert.is((await ferry(['device', 'status', '--root', dev.root, '--json'])).json!.result.state, 'committed')
  await rm(blob)
  const gone = await importCli(ctx.delta.path, dev)
  assert.is(gone.code, 3)
  assert.match(gone.json!.error!.message, /vm\/edge/)
  assert.is(await deviceSnapshot(dev.paths), before)
})

test('killed during the rebuild: recover returns to the base release, then the import works', async () => {
  const dev = await deviceOnV1('killed')
  const killed = await importCli(ctx.delta.path, dev, {FERRY_TEST_KILL_AT: 'verifying:rebuild:slab'})
  assert.is(killed.code, null, `not killed: ${killed.stdout}${killed.stderr}`)
  const recovered = await ferry(['device', 'recover', '--root', dev.root, '--json'])
  assert.is(recovered.code, 0, recovered.stdout + recovered.stderr)
  const s = await readState(dev.paths)
  assert.is(s.state, 'committed')
  assert.is(s.current!.version, '1.0.0')
  assert.is(s.staged, undefined)
  const again = await importCli(ctx.delta.path, dev)
  assert.is(again.code, 0, again.stdout + again.stderr)
  const slot = slotDir(dev.paths, again.json!.result.slot)
  assert.is(await shaFile(join(slot, 'vm', 'edge-2.vhdx')), ctx.digests.get('vm/edge'))
})

test.run()
