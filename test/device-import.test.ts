// Device import end to end through the built `ferry` binary: what gets staged, and every refusal with its
// exit code, its message, and a device left exactly as it was (state.json, slots, trust store).
import {execFileSync, spawn} from 'node:child_process'
import {mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {serialise} from '../src/bundle/build.js'
import {writeState, readState} from '../src/device/journal.js'
import {slotDir} from '../src/device/paths.js'
import {readSlotManifest} from '../src/device/slot-manifest.js'
import {markBad, raiseFloor} from '../src/device/trust-store.js'
import {armorSignatures, fileSigner} from '../src/trust/sign.js'
import {ferry} from './helpers/cli.js'
import {defaultArtifacts, deviceSnapshot, makeBundle, makeDevice, makeKey, type MadeBundle, type TestDevice, type TestKey} from './helpers/device.js'
import {readEntries, writeEntries} from './helpers/tar-craft.js'

const ctx = {} as {dir: string; k1: TestKey; stranger: TestKey; v1: MadeBundle; v2: MadeBundle}
const test = suite('device import')
let n = 0
const fresh = () => makeDevice(join(ctx.dir, `dev-${++n}`), {trust: [ctx.k1]})
const importCli = (bundle: string, dev: TestDevice, extra: string[] = [], env: Record<string, string> = {}) =>
  ferry(['device', 'import', bundle, '--root', dev.root, '--json', ...extra], {env})

/** Runs an import expected to be refused and checks the device did not change at all. */
async function refused(dev: TestDevice, bundle: string, exit: number, code: string, message: RegExp, opts: {extra?: string[]; env?: Record<string, string>} = {}) {
  const before = await deviceSnapshot(dev.paths)
  const r = await importCli(bundle, dev, opts.extra, opts.env)
  assert.is(r.code, exit, `exit ${r.code}: ${r.stdout}${r.stderr}`)
  assert.is(r.json?.error?.code, code)
  assert.match(r.json!.error!.message, message)
  assert.not.match(r.json!.error!.message, /\n/)
  assert.is(await deviceSnapshot(dev.paths), before, 'the device changed')
  return r
}

/** What apply's commit leaves behind, without running apply: `current` is the staged release. */
async function pretendCommitted(dev: TestDevice): Promise<void> {
  const s = await readState(dev.paths)
  await writeState(dev.paths, {...s, state: 'committed', current: s.staged, staged: undefined})
  await raiseFloor(dev.paths, s.staged!.name, s.staged!.version)
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-dimport-'))
  ctx.k1 = await makeKey(ctx.dir, 'k1')
  ctx.stranger = await makeKey(ctx.dir, 'stranger')
  ctx.v1 = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1]})
  ctx.v2 = await makeBundle({dir: ctx.dir, version: '2.0.0', signers: [ctx.k1]})
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('import stages the inactive slot: binaries 0755, VM image linked from the store, release.json, state staged', async () => {
  const dev = await fresh()
  const r = await importCli(ctx.v1.path, dev)
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.status, 'staged')
  assert.is(r.json!.result.slot, 'a')
  const slot = slotDir(dev.paths, 'a')
  assert.is((await stat(join(slot, 'bin', 'k3s'))).mode & 0o777, 0o755)
  assert.match(execFileSync(join(slot, 'bin', 'k3s')).toString(), /k3s 1\.0\.0/)
  const vm = ctx.v1.manifest.artifacts.find((a) => a.kind === 'vm')!
  const blob = join(dev.paths.blobs, 'sha256', vm.digest.slice(7))
  assert.is((await stat(join(slot, 'vm', 'edge.qcow2'))).ino, (await stat(blob)).ino)
  assert.is(await readFile(join(slot, 'files', 'release-notes.txt'), 'utf8'), 'release 1.0.0\n')
  const release = (await readSlotManifest(dev.paths, 'a'))!
  assert.is(release.version, '1.0.0')
  assert.is(release.digest, ctx.v1.digest)
  const state = await readState(dev.paths)
  assert.is(state.state, 'staged')
  assert.equal(state.staged, {slot: 'a', name: 'edge-site', version: '1.0.0', digest: ctx.v1.digest})

  // With 1.0.0 running from slot a, the next release goes to slot b and reuses the stored VM image.
  await pretendCommitted(dev)
  const r2 = await importCli(ctx.v2.path, dev)
  assert.is(r2.code, 0, r2.stderr)
  assert.is(r2.json!.result.slot, 'b')
  // k3s, kubectl, the release notes, and 2.0.0's SBOM and provenance
  assert.is(r2.json!.result.stored.blobs, 5, 'the unchanged VM image is not stored twice')
  const s2 = await readState(dev.paths)
  assert.is(s2.current!.slot, 'a')
  assert.is(s2.staged!.version, '2.0.0')
  assert.ok(await readSlotManifest(dev.paths, 'a'), 'the running slot is untouched')
})

test('import reads a bundle from a stick folder written as parts', async () => {
  const stick = join(ctx.dir, 'stick')
  await mkdir(stick, {recursive: true})
  const w = await ferry(['usb', 'write', ctx.v1.path, stick, '--part-size', '64K', '--json'])
  assert.is(w.code, 0, w.stderr)
  const dev = await fresh()
  const r = await importCli(stick, dev)
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.digest, ctx.v1.digest)
  assert.is((await readState(dev.paths)).staged!.version, '1.0.0')
})

test('refused: signed by an untrusted key (exit 4)'
, async () => {
  const dev = await fresh()
  const bundle = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.stranger]})
  await refused(dev, bundle.path, 4, 'SIGNATURE_UNKNOWN_KEY', new RegExp(`not trusted here: ${ctx.stranger.fingerprint}`))
})

test('refused: unsigned (no bundle.json.asc) (exit 4)', async () => {
  const dev = await fresh()
  const entries = (await readEntries(ctx.v1.path)).filter((e) => e.path !== 'bundle.json.asc')
  const file = join(ctx.dir, 'unsigned.ferry.tar')
  await writeEntries(file, entries)
  await refused(dev, file, 4, 'UNSIGNED', /no signature/)
})

test('refused: expired (exit 4)', async () => {
  const dev = await fresh()
  const bundle = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], created: new Date('2021-01-01T00:00:00Z'), expiresIn: 30 * 86_400_000})
  await refused(dev, bundle.path, 4, 'EXPIRED', /expired at 2021-01-31/)
})

test('refused: a version below the committed floor (downgrade, exit 4)', async () => {
  const dev = await fresh()
  await raiseFloor(dev.paths, 'edge-site', '1.5.0')
  await refused(dev, ctx.v1.path, 4, 'DOWNGRADE', /1\.0\.0 is older than 1\.5\.0/)
})

test('the version the device runs is "already applied": exit 0, nothing changes', async () => {
  const dev = await fresh()
  assert.is((await importCli(ctx.v1.path, dev)).code, 0)
  await pretendCommitted(dev)
  const before = await deviceSnapshot(dev.paths)
  const r = await ferry(['device', 'import', ctx.v1.path, '--root', dev.root])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /already applied/)
  assert.is(await deviceSnapshot(dev.paths), before)
})

test('refused: the version the device runs with other content is "same version, different content" (exit 4)', async () => {
  const dev = await fresh()
  assert.is((await importCli(ctx.v1.path, dev)).code, 0)
  await pretendCommitted(dev)
  const artifacts = defaultArtifacts('1.0.0').map((a) => (a.name === 'files/release-notes.txt' ? {...a, content: 'release 1.0.0, rebuilt\n'} : a))
  const changed = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], artifacts})
  await refused(dev, changed.path, 4, 'SAME_VERSION_DIFFERENT_CONTENT', new RegExp(`same version, different content.*${ctx.v1.digest}.*${changed.digest}`))
  // Built again later from the manifest: only created/expires differ, so it is the release the device runs.
  const later = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], created: new Date(Date.now() - 60_000)})
  assert.is.not(later.digest, ctx.v1.digest)
  const r = await importCli(later.path, dev)
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.is(r.json!.result.status, 'already-applied')
})

test('refused: a bundle of another name (exit 4) unless --switch-name; each name keeps its own floor', async () => {
  const dev = await fresh()
  assert.is((await importCli(ctx.v1.path, dev)).code, 0)
  await pretendCommitted(dev)
  const other = await makeBundle({dir: ctx.dir, name: 'other-site', version: '2027.1.0', signers: [ctx.k1]})
  await refused(dev, other.path, 4, 'BUNDLE_NAME_MISMATCH', /this device runs edge-site; this bundle is other-site 2027\.1\.0.*--switch-name/)
  const switched = await importCli(other.path, dev, ['--switch-name'])
  assert.is(switched.code, 0, switched.stdout + switched.stderr)
  await pretendCommitted(dev)
  // Back to its own name: other-site's floor 2027.1.0 does not lock edge-site out, edge-site's 1.0.0 still holds.
  await refused(dev, ctx.v2.path, 4, 'BUNDLE_NAME_MISMATCH', /this device runs other-site; this bundle is edge-site/)
  const old = await makeBundle({dir: ctx.dir, version: '0.9.0', signers: [ctx.k1]})
  await refused(dev, old.path, 4, 'DOWNGRADE', /0\.9\.0 is older than 1\.0\.0/, {extra: ['--switch-name']})
  const back = await importCli(ctx.v2.path, dev, ['--switch-name'])
  assert.is(back.code, 0, back.stdout + back.stderr)
  const status = await ferry(['device', 'status', '--root', dev.root, '--json'])
  assert.equal(status.json!.result.floors, {'edge-site': '1.0.0', 'other-site': '2027.1.0'})
})

test('a floor.json of one floor for the device (v1) is read as the floor of the name it runs', async () => {
  const dev = await fresh()
  assert.is((await importCli(ctx.v2.path, dev)).code, 0)
  const s = await readState(dev.paths)
  await writeState(dev.paths, {...s, state: 'committed', current: s.staged, staged: undefined})
  await writeFile(join(dev.paths.trust, 'floor.json'), JSON.stringify({schema: 'ferry.floor/v1', version: '2.0.0', raised: '2026-01-01T00:00:00.000Z'}))
  await refused(dev, ctx.v1.path, 4, 'DOWNGRADE', /1\.0\.0 is older than 2\.0\.0/)
  const other = await makeBundle({dir: ctx.dir, name: 'other-site', version: '1.0.0', signers: [ctx.k1]})
  const r = await importCli(other.path, dev, ['--switch-name'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  const status = await ferry(['device', 'status', '--root', dev.root, '--json'])
  assert.is(status.json!.result.floor, '2.0.0')
  assert.equal(status.json!.result.floors, {'edge-site': '2.0.0'})
})

test('refused: built for another platform (exit 4); --platform names the device platform', async () => {
  const dev = await fresh()
  const bundle = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], platforms: ['linux/riscv64']})
  await refused(dev, bundle.path, 4, 'WRONG_PLATFORM', /built for linux\/riscv64; this device is linux\//)
  const r = await importCli(bundle.path, dev, ['--platform', 'linux/riscv64'])
  assert.is(r.code, 0, r.stderr)
})

test('refused: a clock set back cannot revive an expired bundle (the highest time seen counts)', async () => {
  const early = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], created: new Date('2029-12-01T00:00:00Z'), expiresIn: 400 * 86_400_000})
  const lapsed = await makeBundle({dir: ctx.dir, version: '1.1.0', signers: [ctx.k1], created: new Date('2029-01-01T00:00:00Z'), expires: new Date('2029-06-01T00:00:00Z')})
  // A device that never saw a later time accepts `lapsed` at a time before its expiry...
  const control = await fresh()
  assert.is((await importCli(lapsed.path, control, [], {FERRY_NOW: '2029-03-01T00:00:00Z'})).code, 0)
  // ...but one that saw 2030 refuses it even with its clock reset to 1970.
  const dev = await fresh()
  const seen = await importCli(early.path, dev, [], {FERRY_NOW: '2030-01-01T00:00:00Z'})
  assert.is(seen.code, 0, seen.stderr)
  await refused(dev, lapsed.path, 4, 'EXPIRED', /expired at 2029-06-01/, {env: {FERRY_NOW: '1970-01-01T00:00:00Z'}})
})

test('refused: mix-and-match, bundle.json and signature of one bundle with the blobs of another (exit 3)', async () => {
  const dev = await fresh()
  const a = await readEntries(ctx.v1.path)
  const b = await readEntries(ctx.v2.path)
  const file = join(ctx.dir, 'mixed.ferry.tar')
  await writeEntries(file, [...a.slice(0, 4), ...b.slice(4)])
  const r = await refused(dev, file, 3, 'MISSING_BLOB', /blob\(s\) missing/)
  const named = ctx.v1.manifest.artifacts.filter((x) => r.json!.error!.message.includes(x.digest))
  assert.ok(named.length > 0, 'the message names a blob of the bundle.json it came with')
})

test('refused: a corrupt blob (exit 3); a staged release in the slot stays as it was', async () => {
  const dev = await fresh()
  assert.is((await importCli(ctx.v1.path, dev)).code, 0)
  const entries = await readEntries(ctx.v2.path)
  const last = entries[entries.length - 1]
  last.data[10] ^= 0xff
  const file = join(ctx.dir, 'corrupt.ferry.tar')
  await writeEntries(file, entries)
  await refused(dev, file, 3, 'DIGEST_MISMATCH', /does not match its content/)
  assert.is((await readState(dev.paths)).staged!.version, '1.0.0')
})

test('refused: a release a rollback marked bad (exit 4) unless --force', async () => {
  const dev = await fresh()
  await markBad(dev.paths, ctx.v2.digest, {version: '2.0.0', reason: 'health check nodes-ready failed'})
  await refused(dev, ctx.v2.path, 4, 'RELEASE_BAD', /rolled back on this device \(health check nodes-ready failed\).*--force/)
  const r = await importCli(ctx.v2.path, dev, ['--force'])
  assert.is(r.code, 0, r.stderr)
})

test('refused: a delta whose base the device lacks names the missing blobs (exit 3); with the base, it imports', async () => {
  const entries = await readEntries(ctx.v2.path)
  const manifest = JSON.parse(entries[0].data.toString('utf8'))
  const vm = manifest.artifacts.find((a: {kind: string}) => a.kind === 'vm').digest as string
  const delta = {...manifest, base: {name: 'edge-site', version: '1.0.0', digest: ctx.v1.digest}, omitted: [vm]}
  const bundleJson = serialise(delta)
  const signer = await fileSigner(ctx.k1.priv)
  const signature = Buffer.from(armorSignatures([await signer.sign(bundleJson, new Date(manifest.created))]))
  const file = join(ctx.dir, 'edge-site-2.0.0-from-1.0.0.ferry.tar')
  await writeEntries(file, [
    {path: 'bundle.json', data: bundleJson},
    {path: 'bundle.json.asc', data: signature},
    ...entries.slice(2).filter((e) => e.path !== `blobs/sha256/${vm.slice(7)}`),
  ])
  const bare = await fresh()
  await refused(bare, file, 3, 'DELTA_BASE_MISSING', new RegExp(`1 blob\\(s\\) missing: ${vm}`))
  const dev = await fresh()
  assert.is((await importCli(ctx.v1.path, dev)).code, 0)
  await pretendCommitted(dev)
  const r = await importCli(file, dev)
  assert.is(r.code, 0, r.stderr)
  assert.is((await stat(join(slotDir(dev.paths, 'b'), 'vm', 'edge.qcow2'))).size, 256 * 1024)
})

test('refused: another import or apply holds the lock (exit 8); a dead owner\'s lock is broken', async () => {
  const dev = await fresh()
  await mkdir(dev.paths.base, {recursive: true})
  const holder = spawn('sleep', ['60'], {stdio: 'ignore'})
  try {
    await writeFile(dev.paths.lock, `${holder.pid}\n`)
    await refused(dev, ctx.v1.path, 8, 'LOCKED', new RegExp(`process ${holder.pid} holds`))
  } finally {
    holder.kill('SIGKILL')
  }
  await new Promise((resolve) => holder.once('exit', resolve))
  await writeFile(dev.paths.lock, `${holder.pid}\n`)
  const r = await importCli(ctx.v1.path, dev)
  assert.is(r.code, 0, r.stderr)
})

test('refused: not enough free space on the device (a small tmpfs as its root, exit 6)', async () => {
  const root = join(ctx.dir, 'tmpfs-root')
  await mkdir(root, {recursive: true})
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', root])
  try {
    const dev = await makeDevice(root, {trust: [ctx.k1]})
    const big = await makeBundle({
      dir: ctx.dir,
      version: '1.0.0',
      signers: [ctx.k1],
      artifacts: [{name: 'vm/big.qcow2', kind: 'vm', dest: 'vm/big.qcow2', content: {size: 12 << 20, seed: 'big'}}],
    })
    await refused(dev, big.path, 6, 'NO_SPACE', /not enough free space .* needs 1[23]\.\d MiB, [0-9.]+ [KM]iB available/)
  } finally {
    execFileSync('umount', [root])
  }
})

test('a failure while filling the slot leaves no release.json and the journal back where it was', async () => {
  const dev = await fresh()
  const bundle = await makeBundle({
    dir: ctx.dir,
    version: '1.0.0',
    signers: [ctx.k1],
    artifacts: [
      {name: 'files/ok.txt', kind: 'file', dest: 'files/ok.txt', content: 'ok\n'},
      {name: 'files/escape.txt', kind: 'file', dest: '../../escape.txt', content: 'out\n'},
    ],
  })
  const r = await importCli(bundle.path, dev)
  assert.is(r.code, 3)
  assert.is(r.json!.error!.code, 'BAD_DEST')
  const state = await readState(dev.paths)
  assert.is(state.state, 'idle')
  assert.is(state.staged, undefined)
  assert.match(state.lastError ?? '', /outside its slot/)
  assert.is(await readSlotManifest(dev.paths, 'a'), undefined)
  assert.is(await stat(join(dev.paths.slots, 'escape.txt')).catch(() => undefined), undefined)
})

for (const point of ['verifying:verify', 'verifying:verify:blob', 'verifying:stage', 'verifying:stage:files']) {
  test(`killed at ${point}: the staged slot never looks complete, recover returns to the running release, import again works`, async () => {
    const dev = await fresh()
    assert.is((await importCli(ctx.v1.path, dev)).code, 0)
    await pretendCommitted(dev)
    const killed = await importCli(ctx.v2.path, dev, [], {FERRY_TEST_KILL_AT: point})
    assert.is(killed.code, null, `the import was not killed at ${point}: ${killed.stdout}${killed.stderr}`)
    assert.is((await readState(dev.paths)).state, 'verifying')
    assert.is(await readSlotManifest(dev.paths, 'b'), undefined)
    const recovered = await ferry(['device', 'recover', '--root', dev.root, '--json'])
    assert.is(recovered.code, 0, recovered.stdout + recovered.stderr)
    const state = await readState(dev.paths)
    assert.is(state.state, 'committed')
    assert.is(state.current!.version, '1.0.0')
    assert.is(state.staged, undefined)
    const again = await importCli(ctx.v2.path, dev)
    assert.is(again.code, 0, again.stderr)
    assert.is((await readSlotManifest(dev.paths, 'b'))!.version, '2.0.0')
    assert.equal(await readdir(dev.paths.tmp), [])
  })
}

test.run()
