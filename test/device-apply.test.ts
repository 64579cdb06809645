// `ferry device apply|recover|commit|rollback` end to end through the built binary, on device roots in
// temp folders: A/B switch, trial by health checks, commit, automatic rollback, hooks, lock, refusals.
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {createServer} from 'node:http'
import {describeFailure, runHealthChecks} from '../src/device/health.js'
import {isBad} from '../src/device/trust-store.js'
import {HealthCheck} from '../src/manifest/lock-format.js'
import {ferry} from './helpers/cli.js'
import {makeBundle, makeDevice, makeKey, type MadeBundle, type TestKey} from './helpers/device.js'
import {hostLog, type K3sMode, nodesReady, standInArtifacts, writeDeviceConfig} from './helpers/stand-ins.js'

const test = suite('device apply')
let dir = ''
let key: TestKey
let n = 0

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-apply-'))
  key = await makeKey(dir, 'release')
})
test.after(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function device(extraConfig = '') {
  const dev = await makeDevice(join(dir, `dev-${++n}`), {trust: [key]})
  await writeDeviceConfig(dev.root, extraConfig)
  return dev
}

function release(version: string, mode: K3sMode, opts: {timeout?: number; hangSeconds?: number; extra?: any[]} = {}): Promise<MadeBundle> {
  return makeBundle({
    dir,
    version,
    signers: [key],
    artifacts: [...standInArtifacts(version, mode, opts.hangSeconds), ...(opts.extra ?? [])],
    health: [nodesReady(opts.timeout ?? 10)],
  })
}

async function importOk(bundle: MadeBundle, root: string) {
  const r = await ferry(['device', 'import', bundle.path, '--root', root, '--json'])
  assert.is(r.code, 0, `import: ${r.stdout}${r.stderr}`)
}

const status = async (root: string) => (await ferry(['device', 'status', '--root', root, '--json'])).json?.result
const link = (root: string) => readlink(join(root, 'var/lib/ferry/current')).catch(() => undefined)

test('apply with nothing staged is exit 2 and says to import first', async () => {
  const dev = await device()
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 2)
  assert.match(r.stderr, /nothing is staged.*ferry device import/)
  assert.is(r.stderr.trim().split('\n').length, 1, 'one line')
})

test('a healthy release is switched to, checked and committed; the next one keeps it as previous', async () => {
  const dev = await device()
  const v1 = await release('1.0.0', 'healthy')
  await importOk(v1, dev.root)
  const first = await ferry(['device', 'apply', '--root', dev.root, '--json'])
  assert.is(first.code, 0, first.stdout + first.stderr)
  assert.is(first.json?.result.outcome, 'committed')
  assert.equal(first.json?.result.checks, [{name: 'nodes-ready', ok: true, attempts: 1}])
  assert.is(await link(dev.root), 'slots/a')
  let s = await status(dev.root)
  assert.is(s.state, 'committed')
  assert.is(s.current.version, '1.0.0')
  assert.is(s.previous, null, 'a first release has no previous')
  assert.is(s.floor, '1.0.0')
  assert.equal(await hostLog(dev.root), ['pre-switch a 1.0.0 apply', 'activate a 1.0.0 apply', 'post-switch a 1.0.0 apply'])
  const checked = await readFile(join(dev.root, 'stand-in/k3s.log'), 'utf8')
  assert.match(checked, /^a 1\.0\.0 kubectl get nodes$/m, 'the check ran the slot\'s own k3s with FERRY_SLOT and FERRY_VERSION')

  const v2 = await release('1.1.0', 'healthy')
  await importOk(v2, dev.root)
  const second = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(second.code, 0, second.stderr)
  assert.match(second.stdout, /committed edge-site 1\.1\.0/)
  assert.is(await link(dev.root), 'slots/b')
  s = await status(dev.root)
  assert.is(s.current.version, '1.1.0')
  assert.is(s.previous.version, '1.0.0')
  assert.is(s.floor, '1.1.0')

  // A third release overwrites slot a; the commit collects the blobs only 1.0.0 used.
  const v3 = await release('1.2.0', 'healthy')
  const v1Only = v1.manifest.artifacts.map((a) => a.digest).filter((d) => !v2.manifest.artifacts.some((b) => b.digest === d) && !v3.manifest.artifacts.some((b) => b.digest === d))
  await importOk(v3, dev.root)
  const third = await ferry(['device', 'apply', '--root', dev.root, '--json'])
  assert.is(third.code, 0, third.stdout)
  assert.ok(third.json?.result.gc.removed >= v1Only.length)
  const blobs = await readdir(join(dev.root, 'var/lib/ferry/blobs/sha256'))
  for (const d of v1Only) assert.not.ok(blobs.includes(d.slice(7)), `blob ${d} of 1.0.0 collected`)
  for (const a of [...v2.manifest.artifacts, ...v3.manifest.artifacts]) assert.ok(blobs.includes(a.digest.slice(7)), `blob ${a.name} of a slot kept`)
})

test('an unhealthy release rolls back by itself: exit 7 with the check output, marked bad, hooks re-activate the old slot', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  const bad = await release('1.0.1', 'unhealthy')
  await importOk(bad, dev.root)
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 7, r.stdout + r.stderr)
  const line = r.stderr.trim()
  assert.is(line.split('\n').length, 1, 'one line')
  assert.match(line, /health check "nodes-ready" failed \(exit 1\).*NotReady.*rolled back to edge-site 1\.0\.0 \(slot a\)/)
  assert.is(await link(dev.root), 'slots/a')
  const s = await status(dev.root)
  assert.is(s.state, 'rolled-back')
  assert.is(s.current.version, '1.0.0')
  assert.is(s.floor, '1.0.0', 'the floor is raised only at commit')
  assert.match(s.lastError, /nodes-ready.*NotReady/)
  assert.ok(await isBad(dev.paths, bad.digest), 'the release is marked bad')
  assert.equal((await hostLog(dev.root)).slice(3), ['pre-switch b 1.0.1 apply', 'activate b 1.0.1 apply', 'post-switch b 1.0.1 apply', 'activate a 1.0.0 rollback'])
  // Not retried automatically: importing it again is refused until forced.
  const again = await ferry(['device', 'import', bad.path, '--root', dev.root])
  assert.is(again.code, 4, again.stderr)
})

test('a health check that hangs is killed with its whole process group at its deadline, then rolled back', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  const marker = 4000 + Math.floor(Math.random() * 900)
  await importOk(await release('1.0.1', 'hang', {timeout: 1, hangSeconds: marker}), dev.root)
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 7)
  assert.match(r.stderr, /health check "nodes-ready" failed \(no answer within 1s\).*rolled back to edge-site 1\.0\.0/)
  const left = spawnSync('pgrep', ['-f', `sleep ${marker}`], {encoding: 'utf8'}).stdout.trim()
  assert.is(left, '', 'no process of the hung check is left')
  assert.is((await status(dev.root)).current.version, '1.0.0')
})

test('a failing first release leaves a fresh device with nothing active', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'unhealthy'), dev.root)
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 7)
  assert.match(r.stderr, /no release is active/)
  assert.is(await link(dev.root), undefined)
  const s = await status(dev.root)
  assert.is(s.state, 'rolled-back')
  assert.is(s.current, null)
})

test('a passing hook\'s output is shown and logged in hooks.log', async () => {
  const dev = await device()
  await writeFile(join(dev.root, 'etc/ferry/device.yaml'), 'hooks:\n  activate: echo "restarted k3s for $FERRY_VERSION"; echo "units settled" >&2\n')
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, 'activate hook: restarted k3s for 1.0.0')
  assert.match(r.stdout, 'activate hook: units settled')
  const log = await readFile(join(dev.root, 'var/lib/ferry/hooks.log'), 'utf8')
  assert.match(log, /^\S+Z activate \(apply 1\.0\.0\): ok\n/)
  assert.match(log, /^ {2}restarted k3s for 1\.0\.0$/m)
  assert.match(log, /^ {2}units settled$/m)
})

test('a failing pre-switch hook rolls back before anything switched', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  await importOk(await release('1.1.0', 'healthy'), dev.root)
  await writeFile(join(dev.root, 'stand-in/fail-pre-switch'), '')
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 7)
  assert.match(r.stderr, /pre-switch hook failed \(exit 3\): host: cannot pre-switch slot b; rolled back to edge-site 1\.0\.0/)
  assert.is(await link(dev.root), 'slots/a')
})

test('a second apply while one holds the lock is exit 8', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  // The lock of a live process (this test runner) is held; a dead one's would be broken.
  await writeFile(join(dev.root, 'var/lib/ferry/lock'), `${process.pid}\n`)
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 8)
  assert.match(r.stderr, /busy: process \d+ holds/)
  await rm(join(dev.root, 'var/lib/ferry/lock'))
  await writeFile(join(dev.root, 'var/lib/ferry/lock'), '999999999\n')
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0, 'a dead owner\'s lock is broken')
})

test('manual commit from a trial, manual rollback to the previous slot', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  const v2 = await release('1.1.0', 'healthy')
  await importOk(v2, dev.root)
  const killed = await ferry(['device', 'apply', '--root', dev.root], {env: {FERRY_TEST_KILL_AT: 'trial:health'}})
  assert.is(killed.code, null, 'killed in trial')
  assert.is((await status(dev.root)).state, 'trial')
  assert.is((await ferry(['device', 'rollback', '--root', dev.root])).code, 0)
  assert.is(await link(dev.root), 'slots/a')
  assert.ok(await isBad(dev.paths, v2.digest))

  const v3 = await release('1.2.0', 'healthy')
  await importOk(v3, dev.root)
  await ferry(['device', 'apply', '--root', dev.root], {env: {FERRY_TEST_KILL_AT: 'trial:health'}})
  const c = await ferry(['device', 'commit', '--root', dev.root, '--json'])
  assert.is(c.code, 0, c.stdout)
  assert.is(c.json?.result.floor, '1.2.0')
  assert.is((await ferry(['device', 'commit', '--root', dev.root])).code, 2, 'nothing in trial any more')

  const back = await ferry(['device', 'rollback', '--root', dev.root, '--json'])
  assert.is(back.code, 0, back.stdout)
  assert.is(back.json?.result.current.version, '1.0.0')
  assert.is(await link(dev.root), 'slots/a')
  const again = await ferry(['device', 'rollback', '--root', dev.root])
  assert.is(again.code, 2, 'the slot left is marked bad and nothing older is kept')
})

test('recover rolls back a trial interrupted more often than trial.maxAttempts', async () => {
  const dev = await device('trial:\n  maxAttempts: 1\n')
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  const v2 = await release('1.1.0', 'healthy')
  await importOk(v2, dev.root)
  const kill = {env: {FERRY_TEST_KILL_AT: 'trial:health'}}
  assert.is((await ferry(['device', 'apply', '--root', dev.root], kill)).code, null)
  assert.is((await ferry(['device', 'recover', '--root', dev.root], kill)).code, null, 'first resume, interrupted too')
  const r = await ferry(['device', 'recover', '--root', dev.root])
  assert.is(r.code, 7, r.stdout + r.stderr)
  assert.match(r.stderr, /interrupted 2 times; rolled back: the device is on edge-site 1\.0\.0/)
  assert.is(await link(dev.root), 'slots/a')
  assert.ok(await isBad(dev.paths, v2.digest))
  const quiet = await ferry(['device', 'recover', '--root', dev.root])
  assert.is(quiet.code, 0)
  assert.match(quiet.stdout, /nothing to recover/)
})

test('with K3s, the airgap archives are placed in its agent/images folder', async () => {
  const dev = await device('k3s:\n  imagesDir: /var/lib/rancher/k3s/agent/images\n')
  const airgap = {name: 'k3s/k3s-airgap-images-amd64.tar.zst', kind: 'k3s', dest: 'images/k3s-airgap-images-amd64.tar.zst', content: {size: 64 * 1024, seed: 'airgap'}}
  await importOk(await release('1.0.0', 'healthy', {extra: [airgap]}), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  const placed = join(dev.root, 'var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst')
  assert.ok(existsSync(placed))
  assert.is((await readFile(placed)).length, 64 * 1024)
})

test('a key rotation the release carries is adopted when it commits, not when it rolls back', async () => {
  const next = await makeKey(dir, 'next')
  const dev = await device()
  const rotating = (version: string, mode: K3sMode) =>
    makeBundle({dir, version, signers: [key], artifacts: standInArtifacts(version, mode), health: [nodesReady()], rotation: {to: [next]}})
  await importOk(await rotating('1.0.0', 'unhealthy'), dev.root)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 7)
  assert.equal((await status(dev.root)).trustedKeys.map((k: any) => k.fingerprint), [key.fingerprint], 'a rolled-back release changes no key')
  await importOk(await rotating('1.0.1', 'healthy'), dev.root)
  const r = await ferry(['device', 'apply', '--root', dev.root, '--json'])
  assert.is(r.code, 0, r.stdout)
  assert.equal(r.json?.result.rotated, {keys: [next.fingerprint], threshold: 1})
  assert.equal((await status(dev.root)).trustedKeys.map((k: any) => k.fingerprint), [next.fingerprint])
})

test('a broken device.yaml is exit 2 naming the field', async () => {
  const dev = await device()
  await importOk(await release('1.0.0', 'healthy'), dev.root)
  await mkdir(join(dev.root, 'etc/ferry'), {recursive: true})
  await writeFile(join(dev.root, 'etc/ferry/device.yaml'), 'trial:\n  maxAttempts: lots\n')
  const r = await ferry(['device', 'apply', '--root', dev.root])
  assert.is(r.code, 2)
  assert.match(r.stderr, /device\.yaml: trial\.maxAttempts/)
  assert.is((await status(dev.root)).state, 'staged', 'nothing changed')
})

test('HTTP checks: a 2xx passes, retries wait for a service coming up, a silent one hits its deadline', async () => {
  let calls = 0
  const server = createServer((req, res) => {
    if (req.url === '/silent') return // never answers
    calls++
    if (req.url === '/ready' && calls < 3) res.writeHead(503).end('warming up\n')
    else if (req.url === '/ready') res.writeHead(200).end('ok\n')
    else res.writeHead(500).end('database unreachable\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as {port: number}).port}`
  const ctx = {slotDir: dir, env: {}}
  try {
    const ready = await runHealthChecks([HealthCheck.parse({name: 'api', http: `${base}/ready`, timeout: 5, retries: 3, interval: 0.05})], ctx)
    assert.ok(ready.ok)
    assert.is(ready.checks[0].attempts, 3)
    const broken = await runHealthChecks([HealthCheck.parse({name: 'db', http: `${base}/broken`, timeout: 5})], ctx)
    assert.not.ok(broken.ok)
    assert.is(describeFailure(broken.failed!), 'health check "db" failed (HTTP 500): database unreachable')
    const silent = await runHealthChecks([HealthCheck.parse({name: 'ui', http: `${base}/silent`, timeout: 0.5, retries: 1, interval: 0})], ctx)
    assert.is(describeFailure(silent.failed!), 'health check "ui" failed after 2 attempts (no answer within 0.5s)')
  } finally {
    server.closeAllConnections()
    server.close()
  }
})

test.run()
