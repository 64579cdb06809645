// `ferry device status` tells the truth and the next step: interrupted imports and applies named with
// `device recover`, bad releases, component versions and key names, a `next:` line, a --root that holds no
// Ferry state refused (and never created), and a way forward from an unreadable state.json.
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {readState} from '../src/device/journal.js'
import {ferry} from './helpers/cli.js'
import {makeBundle, makeDevice, makeKey, type MadeBundle, type TestDevice, type TestKey} from './helpers/device.js'
import {type K3sMode, nodesReady, standInArtifacts, writeDeviceConfig} from './helpers/stand-ins.js'

const test = suite('device status')
let dir = ''
let key: TestKey
let n = 0

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-status-'))
  key = await makeKey(dir, 'release')
})
test.after(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function device(): Promise<TestDevice> {
  const dev = await makeDevice(join(dir, `dev-${++n}`), {trust: [key]})
  await writeDeviceConfig(dev.root, '')
  return dev
}

function release(version: string, mode: K3sMode): Promise<MadeBundle> {
  const artifacts = standInArtifacts(version, mode).map((a) =>
    a.kind === 'k3s' ? {...a, version: `v1.30.${version.split('.')[0]}+k3s1`} : a.kind === 'kubernetes' ? {...a, version: `v1.30.${version.split('.')[0]}`} : a,
  )
  return makeBundle({dir, version, signers: [key], artifacts, health: [nodesReady(10)]})
}

const status = (dev: TestDevice, json = true) => ferry(['device', 'status', '--root', dev.root, ...(json ? ['--json'] : [])])
const run = (dev: TestDevice, verb: string[], env: Record<string, string> = {}) => ferry(['device', ...verb, '--root', dev.root, '--json'], {env})

test('staged: next is apply; committed: versions of k3s and Kubernetes, import time, key names beside fingerprints', async () => {
  const dev = await device()
  const fresh = await status(dev, false)
  assert.match(fresh.stdout, /^next:\s+ferry device import BUNDLE --root /m)
  assert.is((await run(dev, ['import', (await release('1.0.0', 'healthy')).path])).code, 0)
  const staged = await status(dev, false)
  assert.match(staged.stdout, new RegExp(`^next:\\s+ferry device apply --root ${dev.root}$`, 'm'))
  assert.is((await run(dev, ['apply'])).code, 0)
  const s = (await status(dev)).json!.result
  assert.is(s.current.k3s, 'v1.30.1+k3s1')
  assert.is(s.current.kubernetes, 'v1.30.1')
  assert.ok(Date.parse(s.current.importedAt) > 0)
  const human = await status(dev, false)
  assert.match(human.stdout, /current:\s+edge-site 1\.0\.0 \(slot a\), k3s v1\.30\.1\+k3s1, kubernetes v1\.30\.1, imported 20/)
  assert.match(human.stdout, new RegExp(`trusted:\\s+${key.fingerprint} Test release`))
  assert.match(human.stdout, /^state:\s+committed since 20/m)
})

test('kill -9 during apply: status names the interrupted apply and "device recover" as the next command', async () => {
  const dev = await device()
  assert.is((await run(dev, ['import', (await release('1.0.0', 'healthy')).path])).code, 0)
  const killed = await run(dev, ['apply'], {FERRY_TEST_KILL_AT: 'trial:health'})
  assert.is(killed.code, null, killed.stdout + killed.stderr)
  const s = (await status(dev)).json!.result
  assert.is(s.state, 'trial')
  assert.equal(s.interrupted, {operation: 'apply', step: 'health'})
  assert.is(s.running, null)
  assert.is(s.next, `ferry device recover --root ${dev.root}`)
  const human = await status(dev, false)
  assert.match(human.stdout, /^state:\s+trial \(interrupted, step health; nothing is running\)/m)
  assert.match(human.stdout, /an apply stopped half-way/)
  assert.match(human.stdout, new RegExp(`^next:\\s+ferry device recover --root ${dev.root}$`, 'm'))
  assert.is((await run(dev, ['recover'])).code, 0)
  assert.is((await status(dev)).json!.result.interrupted, null)
})

test('kill -9 during import: status names the interrupted import, not a "verifying" that never ends', async () => {
  const dev = await device()
  const killed = await run(dev, ['import', (await release('1.0.0', 'healthy')).path], {FERRY_TEST_KILL_AT: 'verifying:verify'})
  assert.is(killed.code, null, killed.stdout + killed.stderr)
  const s = (await status(dev)).json!.result
  assert.equal(s.interrupted, {operation: 'import', step: 'verify'})
  assert.is(s.next, `ferry device recover --root ${dev.root}`)
  assert.match((await status(dev, false)).stdout, /an import stopped half-way/)
})

test('after an automatic rollback, status lists the release marked bad and why', async () => {
  const dev = await device()
  assert.is((await run(dev, ['import', (await release('1.0.0', 'healthy')).path])).code, 0)
  assert.is((await run(dev, ['apply'])).code, 0)
  const bad = await release('2.0.0', 'unhealthy')
  assert.is((await run(dev, ['import', bad.path])).code, 0)
  assert.is((await run(dev, ['apply'])).code, 7)
  const s = (await status(dev)).json!.result
  assert.is(s.badReleases.length, 1)
  assert.is(s.badReleases[0].version, '2.0.0')
  assert.is(s.badReleases[0].digest, bad.digest)
  assert.match(s.badReleases[0].reason, /nodes-ready/)
  assert.match((await status(dev, false)).stdout, new RegExp(`^bad:\\s+edge-site 2\\.0\\.0 \\(bundle\\.json ${bad.digest}\\), rolled back 20.*nodes-ready`, 'm'))
})

test('a --root that holds no Ferry state is exit 2 for status, apply, commit, rollback and import; nothing is created there', async () => {
  const root = join(dir, 'not-a-device')
  await mkdir(root)
  for (const verb of [['status'], ['apply'], ['commit'], ['rollback'], ['import', join(dir, 'nothing.ferry.tar')]]) {
    const r = await ferry(['device', ...verb, '--root', root, '--json'])
    assert.is(r.code, 2, `${verb[0]}: ${r.stdout}${r.stderr}`)
    assert.is(r.json!.error!.code, 'NOT_A_DEVICE')
    assert.match(r.json!.error!.message, new RegExp(`${root} holds no Ferry state .*ferry device trust add`))
  }
  assert.not.ok(existsSync(join(root, 'var')), 'no var/ was created')
})

test('an unreadable state.json: status says how to go on; recover --rebuild-state rebuilds it from the slots', async () => {
  const dev = await device()
  assert.is((await run(dev, ['import', (await release('1.0.0', 'healthy')).path])).code, 0)
  assert.is((await run(dev, ['apply'])).code, 0)
  await writeFile(dev.paths.state, '{"schema": "ferry.device-state/v1", "sta')
  const broken = await status(dev)
  assert.is(broken.code, 3)
  assert.match(broken.json!.error!.message, /state\.json is not valid JSON; run "ferry device recover --rebuild-state"/)
  const rebuilt = await run(dev, ['recover', '--rebuild-state'])
  assert.is(rebuilt.code, 0, rebuilt.stdout + rebuilt.stderr)
  const s = await readState(dev.paths)
  assert.is(s.state, 'committed')
  assert.is(s.current!.version, '1.0.0')
  const again = await run(dev, ['recover', '--rebuild-state'])
  assert.is(again.code, 2, 'a readable state.json is not rebuilt')
})

test.run()
