// Crash safety of apply: kill -9 at every state and step the journal records (FERRY_TEST_KILL_AT), and at
// random moments; after `device recover` the device is on exactly the old release or the new one, the
// journal agrees with `current`, status says so, and apply runs again to completion.
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {cp, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {applyStaged} from '../src/device/apply.js'
import {importBundle} from '../src/device/import.js'
import {readState, writeState} from '../src/device/journal.js'
import {devicePaths, type DevicePaths} from '../src/device/paths.js'
import {recoverDevice} from '../src/device/recover.js'
import {readSlotManifest} from '../src/device/slot-manifest.js'
import {deviceStatus} from '../src/device/status.js'
import {readCurrentSlot} from '../src/device/switch.js'
import {FerryError} from '../src/errors.js'
import {ferry} from './helpers/cli.js'
import {makeBundle, makeDevice, makeKey, type MadeBundle, type TestKey} from './helpers/device.js'
import {type K3sMode, nodesReady, standInArtifacts, writeDeviceConfig} from './helpers/stand-ins.js'

const BIN = fileURLToPath(new URL('../bin/run.js', import.meta.url))
const APPLY_CHILD = fileURLToPath(new URL('./helpers/apply-child.mjs', import.meta.url))
const test = suite('device kill -9')
let dir = ''
let key: TestKey
/** a device with 1.0.0 committed; fresh: a device with nothing applied yet */
let base = ''
let fresh = ''
let copies = 0
let minor = 0

const K3S_CONFIG = 'k3s:\n  imagesDir: /var/lib/rancher/k3s/agent/images\n'

function release(mode: K3sMode, version = `1.${++minor}.0`): Promise<MadeBundle> {
  const airgap = {name: 'k3s/k3s-airgap-images-amd64.tar.zst', kind: 'k3s' as const, dest: 'images/k3s-airgap-images-amd64.tar.zst', content: `airgap ${version}\n`}
  return makeBundle({dir, version, signers: [key], artifacts: [...standInArtifacts(version, mode), airgap], health: [nodesReady(10)]})
}

test.before(async () => {
  // tmpfs when there is one: the journal's fsyncs cost nothing there, and these tests are about kills, not disks.
  dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ferry-kill-'))
  key = await makeKey(dir, 'release')
  const f = await makeDevice(join(dir, 'fresh'), {trust: [key]})
  await writeDeviceConfig(f.root, K3S_CONFIG)
  fresh = f.root
  const b = await makeDevice(join(dir, 'base'), {trust: [key]})
  await writeDeviceConfig(b.root, K3S_CONFIG)
  await importBundle(b.paths, (await release('healthy', '1.0.0')).path)
  await applyStaged(b.paths)
  base = b.root
})
test.after(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function copyOf(root: string): Promise<DevicePaths> {
  const to = join(dir, `copy-${++copies}`)
  await cp(root, to, {recursive: true, verbatimSymlinks: true})
  return devicePaths(to)
}

/**
 * Runs `ferry device apply` (or, `direct`, the same built core without the CLI's start-up), SIGKILLed after
 * `killAfterMs` if given; resolves with how it ended.
 */
function runApply(root: string, env: Record<string, string>, killAfterMs?: number, direct = false): Promise<{code: number | null; signal: NodeJS.Signals | null; stderr: string}> {
  return new Promise((resolve, reject) => {
    const args = direct ? [APPLY_CHILD, root] : [BIN, 'device', 'apply', '--root', root]
    const child = spawn(process.execPath, args, {env: {...process.env, NO_COLOR: '1', ...env}, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({code, signal, stderr})
    })
  })
}

/** The promise to the technician: exactly the old release or the new one, and everything says the same. */
async function assertOnOldOrNew(paths: DevicePaths, old: string | undefined, next: string, where: string): Promise<'old' | 'new'> {
  const state = await readState(paths)
  assert.ok(['committed', 'rolled-back', 'idle', 'staged'].includes(state.state), `${where}: settled state, got ${state.state}`)
  assert.is(state.step, undefined, `${where}: no step in flight`)
  const linked = await readCurrentSlot(paths)
  assert.is(linked, state.current?.slot, `${where}: current link agrees with the journal`)
  const on = state.current?.digest
  assert.ok(on === old || on === next, `${where}: on the old or the new release, got ${state.current?.version}`)
  if (state.current) {
    const held = await readSlotManifest(paths, state.current.slot)
    assert.is(held?.digest, state.current.digest, `${where}: the active slot holds the active release`)
  }
  const status = await deviceStatus(paths)
  assert.is(status.state, state.state, `${where}: status agrees`)
  assert.is(status.current?.digest, on, `${where}: status names the same release`)
  return on === next && next !== old ? 'new' : 'old'
}

async function recoverInProcess(paths: DevicePaths): Promise<void> {
  try {
    await recoverDevice(paths)
  } catch (err) {
    if (!(err instanceof FerryError) || err.exit !== 7) throw err
  }
}

/**
 * Apply must run again to completion: a release still staged is applied (it commits, or rolls back when it is
 * the unhealthy kind), then a healthy newer one is imported and commits.
 */
async function assertApplyRunsAgain(paths: DevicePaths, where: string): Promise<void> {
  if ((await readState(paths)).staged) {
    try {
      await applyStaged(paths)
    } catch (err) {
      if (!(err instanceof FerryError) || err.exit !== 7) throw err
    }
  }
  await importBundle(paths, (await release('healthy')).path)
  const result = await applyStaged(paths)
  assert.is(result.outcome, 'committed', `${where}: apply again`)
  assert.is(await readCurrentSlot(paths), result.release.slot)
}

const healthyPoints = [
  'switching:images',
  'switching:images:done',
  'switching:k3s-images',
  'switching:pre-switch',
  'switching:link',
  'switching:link:done',
  'switching:activate',
  'switching:post-switch',
  'trial:health',
  'trial:commit',
  'trial:commit:done',
  'committed',
]
const rollbackPoints = ['rolling-back:link', 'rolling-back:link:done', 'rolling-back:k3s-images', 'rolling-back:activate', 'rolling-back:activate:done', 'rolling-back:mark-bad', 'rolled-back']
const expectNew = (point: string) => point.startsWith('trial') || point === 'committed'

interface Case {
  point: string
  from: 'base' | 'fresh'
  mode: K3sMode
}
const cases: Case[] = [
  ...healthyPoints.map((point) => ({point, from: 'base' as const, mode: 'healthy' as const})),
  ...rollbackPoints.map((point) => ({point, from: 'base' as const, mode: 'unhealthy' as const})),
  {point: 'switching:link:done', from: 'fresh', mode: 'healthy'},
  {point: 'trial:health', from: 'fresh', mode: 'healthy'},
  {point: 'rolling-back:link', from: 'fresh', mode: 'unhealthy'},
]

async function killAt(c: Case): Promise<void> {
  const where = `${c.point} (${c.from}, ${c.mode})`
  const paths = await copyOf(c.from === 'base' ? base : fresh)
  const old = (await readState(paths)).current?.digest
  const next = await release(c.mode)
  await importBundle(paths, next.path)
  const killed = await runApply(paths.root, {FERRY_TEST_KILL_AT: c.point})
  assert.is(killed.signal, 'SIGKILL', `${where}: apply reached the point and died (exit ${killed.code}: ${killed.stderr})`)
  assert.ok(['switching', 'trial', 'rolling-back', 'committed', 'rolled-back'].includes((await readState(paths)).state), `${where}: killed mid-apply`)
  const r = await ferry(['device', 'recover', '--root', paths.root, '--json'])
  assert.ok(r.code === 0 || r.code === 7, `${where}: recover ${r.code} ${r.stdout}${r.stderr}`)
  const on = await assertOnOldOrNew(paths, old, next.digest, where)
  const wanted = c.mode === 'healthy' && expectNew(c.point) ? 'new' : 'old'
  assert.is(on, wanted, `${where}: ended on the ${wanted} release`)
  assert.is(r.code, wanted === 'new' || c.point === 'rolled-back' ? 0 : 7, `${where}: recover's exit says whether the update took`)
  await assertApplyRunsAgain(paths, where)
}

/** Runs `work` over `items`, `lanes` at a time. */
async function inLanes<T>(items: T[], lanes: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  await Promise.all(Array.from({length: lanes}, async () => {
    while (queue.length) await work(queue.shift() as T)
  }))
}

test('kill -9 at every journal state and step, then recover: old or new release, never between', async () => {
  const started = Date.now()
  await inLanes(cases, 2, killAt)
  if (process.env.FERRY_TEST_VERBOSE) console.log(`${cases.length} kill points in ${Date.now() - started} ms`)
})

test('an import killed while verifying or staging: recover returns to the state before it', async () => {
  for (const step of ['verify', 'stage']) {
    const paths = await copyOf(base)
    const before = await readState(paths)
    const next = await release('healthy')
    await importBundle(paths, next.path)
    const staged = await readState(paths)
    // What import journals before each of its side effects (see import.ts): verifying, then staging into the slot.
    await writeState(paths, {...staged, state: 'verifying', step, before: 'staged', ...(step === 'stage' ? {staged: undefined} : {})})
    const r = await ferry(['device', 'recover', '--root', paths.root, '--json'])
    assert.is(r.code, 0, r.stdout)
    assert.is(r.json?.result.action, 'import-abandoned')
    const after = await readState(paths)
    assert.is(after.state, step === 'verify' ? 'staged' : 'committed', `${step}: back to the state before`)
    assert.is(after.staged?.digest, step === 'verify' ? next.digest : undefined, `${step}: a slot the import touched is not staged`)
    assert.is(await assertOnOldOrNew(paths, before.current?.digest, next.digest, `import killed at ${step}`), 'old')
    await assertApplyRunsAgain(paths, `import killed at ${step}`)
  }
})

test('kill -9 at 50 random moments of apply, then recover: old or new release, never between', async () => {
  const lanes = [await copyOf(base), await copyOf(base)]
  // How long a whole apply takes here, two at once as in the loop, so the kills land all over it.
  const probes = [await copyOf(base), await copyOf(base)]
  for (const probe of probes) await importBundle(probe, (await release('healthy')).path)
  const started = Date.now()
  await Promise.all(probes.map((probe) => runApply(probe.root, {}, undefined, true)))
  let span = Date.now() - started
  for (const probe of probes) assert.is((await readState(probe)).state, 'committed', 'the probe apply committed')
  const seen = {old: 0, new: 0, finished: 0, killed: 0}
  let round = 0
  await inLanes(lanes, 2, async (paths) => {
    // Until this lane has killed 25 applies (a run that finished before its kill does not count).
    for (let kills = 0, tries = 0; kills < 25 && tries < 60; tries++) {
      const k = ++round
      const before = await readState(paths)
      if (!before.staged) await importBundle(paths, (await release(k % 3 === 0 ? 'unhealthy' : 'healthy')).path, {force: true})
      const state = await readState(paths)
      const old = state.current?.digest
      const next = state.staged!.digest
      const t0 = Date.now()
      const ended = await runApply(paths.root, {}, Math.floor(span * Math.random()), true)
      if (ended.signal === 'SIGKILL') {
        kills++
        seen.killed++
        span *= 1.02
      } else {
        seen.finished++
        // Follow how long an apply really takes under the current load.
        span = 0.7 * span + 0.3 * (Date.now() - t0)
      }
      await recoverInProcess(paths)
      seen[await assertOnOldOrNew(paths, old, next, `random kill #${k}`)]++
    }
  })
  assert.ok(seen.killed >= 50, `at least 50 kills: ${JSON.stringify(seen)}`)
  if (process.env.FERRY_TEST_VERBOSE) console.log(seen, span)
  assert.ok(seen.old > 0 && seen.new > 0, `kills ended on both sides: ${JSON.stringify(seen)}`)
  for (const paths of lanes) await assertApplyRunsAgain(paths, 'after the random kills')
})

test.run()
