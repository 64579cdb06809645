// The device trust store: keys added by the technician, thresholds, revocation, key rotation carried in a
// bundle and adopted at commit, the version floor, the highest time seen, releases marked bad.
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {readSlotManifest} from '../src/device/slot-manifest.js'
import {
  addTrustedKey,
  adoptRotation,
  isBad,
  listTrustedKeys,
  markBad,
  raiseFloor,
  readFloor,
  recordTime,
  seenTime,
} from '../src/device/trust-store.js'
import {readEntries} from './helpers/tar-craft.js'
import {ferry} from './helpers/cli.js'
import {deviceSnapshot, makeBundle, makeDevice, makeKey, type TestKey} from './helpers/device.js'

const ctx = {} as {dir: string; k1: TestKey; k2: TestKey; k3: TestKey}
const test = suite('device trust')
let n = 0
const fresh = (trust: TestKey[] = []) => makeDevice(join(ctx.dir, `dev-${++n}`), {trust})

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-dtrust-'))
  ctx.k1 = await makeKey(ctx.dir, 'k1')
  ctx.k2 = await makeKey(ctx.dir, 'k2')
  ctx.k3 = await makeKey(ctx.dir, 'k3')
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('trust add, list and remove through the CLI; the last key is kept unless --force', async () => {
  const dev = await fresh()
  const add = await ferry(['device', 'trust', 'add', ctx.k1.pub, ctx.k2.pub, '--root', dev.root, '--json'])
  assert.is(add.code, 0, add.stderr)
  assert.equal(add.json!.result.added.map((k: {fingerprint: string}) => k.fingerprint), [ctx.k1.fingerprint, ctx.k2.fingerprint])
  const list = await ferry(['device', 'trust', 'list', '--root', dev.root, '--json'])
  assert.equal(list.json!.result.keys.map((k: {fingerprint: string}) => k.fingerprint), [ctx.k1.fingerprint, ctx.k2.fingerprint])
  assert.is(list.json!.result.threshold, 1)
  const rm1 = await ferry(['device', 'trust', 'remove', ctx.k1.fingerprint, '--root', dev.root])
  assert.is(rm1.code, 0, rm1.stderr)
  const last = await ferry(['device', 'trust', 'remove', ctx.k2.fingerprint.slice(-16), '--root', dev.root])
  assert.is(last.code, 2)
  assert.match(last.stderr, /last trusted key/)
  assert.equal((await listTrustedKeys(dev.paths)).keys.map((k) => k.fingerprint), [ctx.k2.fingerprint])
  const forced = await ferry(['device', 'trust', 'remove', ctx.k2.fingerprint, '--force', '--root', dev.root])
  assert.is(forced.code, 0, forced.stderr)
  assert.equal((await listTrustedKeys(dev.paths)).keys, [])
})

test('each device starts from an empty trust store: a key added to one is not trusted by the next', async () => {
  const one = await fresh()
  const two = await fresh()
  await addTrustedKey(one.paths, ctx.k1.pub)
  await addTrustedKey(two.paths, ctx.k2.pub)
  const three = await fresh()
  assert.equal((await listTrustedKeys(two.paths)).keys.map((k) => k.fingerprint), [ctx.k2.fingerprint])
  assert.equal((await listTrustedKeys(three.paths)).keys, [])
})

test('a private key file is refused by trust add (exit 2)', async () => {
  const dev = await fresh()
  const r = await ferry(['device', 'trust', 'add', ctx.k1.priv, '--root', dev.root])
  assert.is(r.code, 2)
  assert.match(r.stderr, /private key/)
  assert.equal((await listTrustedKeys(dev.paths)).keys, [])
})

test('a revoked key cannot be added again, and a bundle it signs is refused naming it', async () => {
  const dev = await fresh([ctx.k1, ctx.k2])
  const rev = await ferry(['device', 'trust', 'remove', ctx.k1.fingerprint, '--revoke', '--root', dev.root, '--json'])
  assert.is(rev.code, 0, rev.stderr)
  assert.is(rev.json!.result.revoked, ctx.k1.fingerprint)
  const again = await ferry(['device', 'trust', 'add', ctx.k1.pub, '--root', dev.root])
  assert.is(again.code, 4)
  assert.match(again.stderr, /revoked/)
  const bundle = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1]})
  const before = await deviceSnapshot(dev.paths)
  const imp = await ferry(['device', 'import', bundle.path, '--root', dev.root, '--json'])
  assert.is(imp.code, 4)
  assert.is(imp.json!.error!.code, 'KEY_REVOKED')
  assert.ok(imp.json!.error!.message.includes(ctx.k1.fingerprint))
  assert.is(await deviceSnapshot(dev.paths), before)
})

test('a threshold of 2 refuses a bundle signed by one trusted key and accepts one signed by two', async () => {
  const dev = await fresh([ctx.k1])
  const pubs = await Promise.all([ctx.k1.pub, ctx.k2.pub].map((f) => readFile(f, 'utf8')))
  await adoptRotation(dev.paths, {keys: pubs, threshold: 2})
  const one = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1]})
  const r1 = await ferry(['device', 'import', one.path, '--root', dev.root, '--json'])
  assert.is(r1.code, 4)
  assert.is(r1.json!.error!.code, 'SIGNATURE_THRESHOLD')
  assert.match(r1.json!.error!.message, /carries 1 valid signature.*requires 2/)
  const two = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1, ctx.k2]})
  const r2 = await ferry(['device', 'import', two.path, '--root', dev.root, '--json'])
  assert.is(r2.code, 0, r2.stdout + r2.stderr)
  assert.equal(r2.json!.result.signers.sort(), [ctx.k1.fingerprint, ctx.k2.fingerprint].sort())
})

test('rotation: N rotates to K2; after commit N+1 signed by K2 is accepted and one signed by the retired K1 refused', async () => {
  const dev = await fresh([ctx.k1])
  const n0 = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], rotation: {to: [ctx.k2]}})
  const imported = await ferry(['device', 'import', n0.path, '--root', dev.root, '--json'])
  assert.is(imported.code, 0, imported.stderr)
  assert.equal(imported.json!.result.rotation, {keys: [ctx.k2.fingerprint], threshold: 1})
  // Before the commit, K1 is still the trusted key: the rotation is only carried.
  assert.equal((await listTrustedKeys(dev.paths)).keys.map((k) => k.fingerprint), [ctx.k1.fingerprint])
  // What apply's commit does with the staged release.
  const release = (await readSlotManifest(dev.paths, imported.json!.result.slot))!
  assert.ok(release.rotation, 'release.json carries the rotation')
  await raiseFloor(dev.paths, release.name, release.version)
  await adoptRotation(dev.paths, release.rotation!)
  assert.equal((await listTrustedKeys(dev.paths)).keys.map((k) => k.fingerprint), [ctx.k2.fingerprint])

  const byOld = await makeBundle({dir: ctx.dir, version: '1.1.0', signers: [ctx.k1]})
  const refused = await ferry(['device', 'import', byOld.path, '--root', dev.root, '--json'])
  assert.is(refused.code, 4)
  assert.match(refused.json!.error!.message, new RegExp(ctx.k1.fingerprint))
  const byNew = await makeBundle({dir: ctx.dir, version: '1.1.0', signers: [ctx.k2]})
  const accepted = await ferry(['device', 'import', byNew.path, '--root', dev.root, '--json'])
  assert.is(accepted.code, 0, accepted.stderr)
  assert.equal(accepted.json!.result.signers, [ctx.k2.fingerprint])
})

test('a rotation that would trust a revoked key is refused at import (exit 4), nothing staged', async () => {
  const dev = await fresh([ctx.k1])
  const r0 = await ferry(['device', 'trust', 'revoke', ctx.k3.fingerprint, '--root', dev.root])
  assert.is(r0.code, 0, r0.stderr)
  const bundle = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.k1], rotation: {to: [ctx.k3]}})
  const before = await deviceSnapshot(dev.paths)
  const r = await ferry(['device', 'import', bundle.path, '--root', dev.root, '--json'])
  assert.is(r.code, 4)
  assert.is(r.json!.error!.code, 'ROTATION_REVOKED_KEY')
  assert.is(await deviceSnapshot(dev.paths), before)
})

test('adoptRotation is idempotent and records revocations carried by the rotation', async () => {
  const dev = await fresh([ctx.k1])
  const rotation = {keys: [await readFile(ctx.k2.pub, 'utf8'), await readFile(ctx.k3.pub, 'utf8')], threshold: 2, revoke: [ctx.k1.fingerprint]}
  await adoptRotation(dev.paths, rotation)
  await adoptRotation(dev.paths, rotation)
  const listing = await listTrustedKeys(dev.paths)
  assert.equal(listing.keys.map((k) => k.fingerprint).sort(), [ctx.k2.fingerprint, ctx.k3.fingerprint].sort())
  assert.is(listing.threshold, 2)
  assert.equal(listing.revoked, [ctx.k1.fingerprint])
  const r = await ferry(['device', 'trust', 'add', ctx.k1.pub, '--root', dev.root])
  assert.is(r.code, 4)
})

test('bundle build --rotate-to puts the new key set inside the signed bundle.json', async () => {
  const made = await makeBundle({dir: ctx.dir, version: '3.0.0', signers: [ctx.k1]})
  const lockPath = join(ctx.dir, 'rotate.lock.json')
  const m = made.manifest
  await writeFile(
    lockPath,
    JSON.stringify({
      schema: 'ferry.lock/v1',
      name: m.name,
      version: '3.0.1',
      resolved: m.created,
      expires: m.expires,
      platforms: m.platforms,
      health: m.health,
      artifacts: m.artifacts.map((a) => ({name: a.name, kind: a.kind, url: a.source, sha256: a.digest.slice(7), size: a.size, mediaType: a.mediaType, dest: a.dest, upstream: a.upstream})),
    }),
  )
  const out = join(ctx.dir, 'rotate-out')
  const r = await ferry(['bundle', 'build', lockPath, '--key', ctx.k1.priv, '--store', join(ctx.dir, 'store'), '--out', out, '--rotate-to', ctx.k2.pub, '--rotate-to', ctx.k3.pub, '--rotate-threshold', '2', '--json'])
  assert.is(r.code, 0, r.stderr)
  const entries = await readEntries(r.json!.result.path)
  const bundleJson = JSON.parse(entries[0].data.toString('utf8'))
  assert.is(bundleJson.rotation.threshold, 2)
  assert.is(bundleJson.rotation.keys.length, 2)
  assert.ok(bundleJson.rotation.keys.every((k: string) => k.includes('BEGIN PGP PUBLIC KEY BLOCK')))
  const tooMany = await ferry(['bundle', 'build', lockPath, '--key', ctx.k1.priv, '--store', join(ctx.dir, 'store'), '--out', out, '--rotate-to', ctx.k2.pub, '--rotate-threshold', '2'])
  assert.is(tooMany.code, 2)
  assert.match(tooMany.stderr, /rotate-threshold/)
})

test('the floor only goes up; the time seen only goes forward; markBad is remembered', async () => {
  const dev = await fresh()
  assert.is(await readFloor(dev.paths, 'edge-site'), undefined)
  assert.is(await raiseFloor(dev.paths, 'edge-site', '2.0.0'), '2.0.0')
  assert.is(await raiseFloor(dev.paths, 'edge-site', '1.5.0'), '2.0.0')
  assert.is(await readFloor(dev.paths, 'edge-site'), '2.0.0')
  assert.is(await raiseFloor(dev.paths, 'edge-site', '2.1.0'), '2.1.0')
  assert.is(await readFloor(dev.paths, 'other-site'), undefined, 'each bundle name has its own floor')
  assert.is(await raiseFloor(dev.paths, 'other-site', '1.0.0'), '1.0.0')
  assert.is(await readFloor(dev.paths, 'edge-site'), '2.1.0')
  await recordTime(dev.paths, new Date('2030-01-01T00:00:00Z'))
  await recordTime(dev.paths, new Date('1970-01-02T00:00:00Z'))
  assert.is((await seenTime(dev.paths))!.toISOString(), '2030-01-01T00:00:00.000Z')
  const digest = 'sha256:' + 'ab'.repeat(32)
  assert.is(await isBad(dev.paths, digest), undefined)
  await markBad(dev.paths, digest, {version: '2.2.0', reason: 'health check nodes-ready failed'})
  await markBad(dev.paths, digest)
  assert.is((await isBad(dev.paths, digest))!.reason, 'health check nodes-ready failed')
})

test('status --json reports state, floor and trusted keys in the documented places', async () => {
  const dev = await fresh([ctx.k1])
  await raiseFloor(dev.paths, 'edge-site', '1.0.0')
  const r = await ferry(['device', 'status', '--root', dev.root, '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.state, 'idle')
  assert.is(r.json!.result.current, null)
  assert.equal(r.json!.result.floors, {'edge-site': '1.0.0'})
  assert.equal(r.json!.result.trustedKeys.map((k: {fingerprint: string}) => k.fingerprint), [ctx.k1.fingerprint])
  await addTrustedKey(dev.paths, ctx.k2.pub)
  const human = await ferry(['device', 'status', '--root', dev.root])
  assert.match(human.stdout, /state:\s+idle/)
  assert.match(human.stdout, /floor:\s+edge-site 1\.0\.0/)
})

test.run()
