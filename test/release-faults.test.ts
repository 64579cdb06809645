// The release job under faults, through the ferry binary: kill -9 at each step and at random moments
// then a rerun that finishes the release, --keep pruning, the upstream going away mid-run (exit 5) and a
// full disk during the build (exit 6, on a small tmpfs); neither fault touches the releases already made.
import {execFileSync, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {verifyRebuilds} from '../src/bundle/chunk-rebuild.js'
import {loadVerifyBase} from '../src/bundle/delta-base.js'
import {openBundleInput} from '../src/bundle/input.js'
import {verifyBundleStream} from '../src/bundle/verify.js'
import {readPublicKeys} from '../src/trust/keys.js'
import {ferry, REPO} from './helpers/cli.js'
import {K3S_NEW, K3S_NEWER, K3S_OLD, makeReleaseUpstream, type ReleaseUpstream} from './helpers/release-upstream.js'

const test = suite('release-faults')
const ctx = {} as {fx: ReleaseUpstream}
let folders = 0

const args = (dir: string, ...extra: string[]) => ['release', 'run', ctx.fx.manifest, '--key', ctx.fx.key, '--out', dir, ...(extra.includes('--store') ? [] : ['--store', ctx.fx.store]), '--json', ...extra]
const run = (dir: string, opts: {env?: Record<string, string>; extra?: string[]} = {}) => ferry(args(dir, ...(opts.extra ?? [])), {env: opts.env})
/** A store of its own: what the shared one already holds is not fetched again. */
const freshStore = () => ['--store', join(ctx.fx.root, `store-${folders++}`)]
const newDir = () => join(ctx.fx.root, `releases-${folders++}`)
const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex')

/** Every file in the folder with its sha256: what "untouched" is checked against. */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(dir)).sort()) out[name] = await sha(join(dir, name))
  return out
}

async function listed(dir: string): Promise<Array<{version: string; path: string; deltas: Array<{from: string; path: string}>}>> {
  const r = await ferry(['release', 'list', dir, '--json'])
  assert.is(r.code, 0, r.stderr)
  return r.json!.result.releases
}

/** A bundle verifies (signature, every blob; a delta against its base, chunked artifacts rebuilt). */
async function verify(file: string, baseFile?: string): Promise<void> {
  const keys = await readPublicKeys([ctx.fx.pub])
  const input = await openBundleInput(file)
  const base = baseFile ? await loadVerifyBase(baseFile) : undefined
  const report = await verifyBundleStream(input.open(), {keys, totalSize: input.size, ...(base ? {base} : {})})
  if (base) await verifyRebuilds(report.manifest, {path: input.label, offsets: report.offsets}, base)
}

/**
 * The folder holds exactly what releases.json lists (plus `allowed`), and every bundle it lists is
 * complete: full bundles verify, deltas verify against their base (only those of release `only`, when given).
 */
async function assertClean(dir: string, allowed: string[] = [], only?: string): Promise<void> {
  const index = JSON.parse(await readFile(join(dir, 'releases.json'), 'utf8'))
  const named = new Set<string>(['releases.json', ...allowed])
  for (const r of index.releases) for (const f of [r.bundle.path, r.lock, r.changelog.md, r.changelog.json, ...r.deltas.map((d: {path: string}) => d.path)]) named.add(f)
  assert.equal((await readdir(dir)).filter((f) => !named.has(f)).sort(), [], 'nothing beyond what releases.json lists')
  for (const r of index.releases) {
    if (only !== undefined && r.version !== only) continue
    await verify(join(dir, r.bundle.path))
    for (const d of r.deltas) {
      const base = index.releases.find((x: {version: string}) => x.version === d.from)
      await verify(join(dir, d.path), join(dir, base.bundle.path))
    }
  }
}

/** Runs release plain (one line per step on stdout) and notes when each line arrived, ms after the start. */
function timedRun(dir: string, opts: {killAt?: (line: string, at: number) => number | undefined; extra?: string[]} = {}): Promise<{lines: Array<{line: string; at: number}>; killed: boolean; code: number | null}> {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(join(REPO, 'bin/run.js'), args(dir, ...(opts.extra ?? [])).filter((a) => a !== '--json'), {stdio: ['ignore', 'pipe', 'ignore'], env: {...process.env, NO_COLOR: '1'}})
    const lines: Array<{line: string; at: number}> = []
    let timer: NodeJS.Timeout | undefined
    const kill = (ms: number) => {
      if (timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), Math.max(0, ms))
    }
    const first = opts.killAt?.('', 0)
    if (first !== undefined) kill(first)
    let rest = ''
    child.stdout.on('data', (d) => {
      rest += d
      for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
        const line = rest.slice(0, i)
        rest = rest.slice(i + 1)
        const at = Date.now() - started
        lines.push({line, at})
        const ms = opts.killAt?.(line, at)
        if (ms !== undefined) kill(ms)
      }
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({lines, killed: signal === 'SIGKILL', code})
    })
  })
}

const pendingVersion = async (dir: string): Promise<string | undefined> =>
  existsSync(join(dir, 'pending.lock.json')) ? JSON.parse(await readFile(join(dir, 'pending.lock.json'), 'utf8')).version : undefined

/** The k3s version a recorded release carries, from its changelog. */
async function k3sOf(dir: string, version: string): Promise<string> {
  const changes = JSON.parse(await readFile(join(dir, `edge-site-${version}.changes.json`), 'utf8'))
  return changes.artifacts.find((a: {name: string}) => a.name === 'k3s/k3s-amd64').new.version
}

test.before(async () => {
  ctx.fx = await makeReleaseUpstream()
})

test.after(async () => {
  await ctx.fx.close()
  await rm(ctx.fx.root, {recursive: true, force: true})
})

test('kill -9 at each step of a release, then a rerun: it finishes that release (not a fresh one) with the same bytes and the folder is clean', async () => {
  const dir = newDir()
  const opts = {extra: ['--keep', '2', '--deltas', '1']}
  ctx.fx.move(K3S_OLD)
  assert.is((await run(dir, opts)).code, 0)
  const channel = [K3S_NEW, K3S_NEWER, K3S_OLD, K3S_NEW, K3S_NEWER, K3S_OLD]
  const points = ['release:pending', 'release:full', 'release:delta', 'release:changelog', 'release:recorded']
  for (const [i, point] of points.entries()) {
    ctx.fx.move(channel[i])
    const last = (await listed(dir)).at(-1)!.version
    const killed = await run(dir, {...opts, env: {FERRY_TEST_KILL_AT: point}})
    assert.is(killed.code, null, `${point}: killed`)
    const pending = (await pendingVersion(dir))!
    const recorded = (await listed(dir)).at(-1)!.version
    assert.is(recorded, point === 'release:recorded' ? pending : last, `${point}: release list shows only what was recorded`)
    const full = join(dir, `edge-site-${pending}.ferry.tar`)
    const fullBefore = existsSync(full) ? await sha(full) : undefined
    // upstream moves on before the rerun: finishing means the saved release, not one resolved afresh
    if (point !== 'release:recorded') ctx.fx.move(channel[i + 1])
    const again = await run(dir, opts)
    assert.is(again.code, 0, `${point}: ${again.stderr}`)
    const res = again.json!.result
    assert.is(res.version, pending, `${point}: the rerun finishes the saved release`)
    assert.is(res.changed, point !== 'release:recorded', point)
    assert.is(await k3sOf(dir, pending), channel[i], `${point}: with the k3s it was resolved with`)
    if (fullBefore) assert.is(res.bundle.sha256, fullBefore, `${point}: same bytes`)
    const releases = await listed(dir)
    assert.is(releases.at(-1)!.version, pending)
    assert.equal(releases.at(-1)!.deltas.map((d) => d.from), [releases.at(-2)!.version])
    await assertClean(dir)
    if (point !== 'release:recorded') ctx.fx.move(channel[i])
  }
})

test('kill -9 at random moments of several releases, then a rerun: release list only ever shows complete releases, and the rerun finishes the saved one', async () => {
  ctx.fx.move(K3S_OLD)
  const dir = newDir()
  const keepAll = ['--keep', '20']
  assert.is((await run(dir, {extra: keepAll})).code, 0)
  // one whole run with a change, to know when its steps come
  ctx.fx.move(K3S_NEW)
  const whole = await timedRun(dir, {extra: keepAll})
  assert.is(whole.code, 0)
  const saved = whole.lines.find((l) => l.line.includes('lock saved'))!.at
  const end = whole.lines.at(-1)!.at
  const cycle = [K3S_NEWER, K3S_OLD, K3S_NEW]
  const landed: string[] = []
  for (let i = 0; i < 6; i++) {
    ctx.fx.move(cycle[i % 3])
    const before = (await listed(dir)).map((r) => r.version)
    // every third moment anywhere from the start (also while resolving); the others while the release is made
    const anywhere = i % 3 === 0
    const killAt = (line: string) => {
      if (anywhere) return line === '' ? Math.floor(Math.random() * end * 1.1) : undefined
      return line.includes('lock saved') ? Math.floor(Math.random() * (end - saved) * 1.1) : undefined
    }
    const k = await timedRun(dir, {killAt, extra: keepAll})
    const releases = await listed(dir)
    const pending = await pendingVersion(dir)
    const recorded = releases.length > before.length
    landed.push(!k.killed ? 'finished' : recorded ? 'after recording' : pending ? 'mid-release' : 'before the lock was saved')
    assert.equal(releases.slice(0, before.length).map((r) => r.version), before, 'the releases made before stay')
    // besides what releases.json lists: only the release being made, under its own names, or temp names
    for (const f of await readdir(dir)) {
      if (f === 'releases.json' || f === 'pending.lock.json' || f === '.release.lock' || f.startsWith('.')) continue
      const ofListed = releases.some((r) => f.startsWith(`edge-site-${r.version}.`) || f.startsWith(`edge-site-${r.version}-from-`))
      const ofPending = pending !== undefined && (f.startsWith(`edge-site-${pending}.`) || f.startsWith(`edge-site-${pending}-from-`))
      assert.ok(ofListed || ofPending, `${f} belongs to a release`)
      // no half-made file under a final name: every bundle there is whole
      const delta = /^edge-site-(.+)-from-(.+)\.ferry\.tar$/.exec(f)
      if (delta) await verify(join(dir, f), join(dir, `edge-site-${delta[2]}.ferry.tar`))
      else if (f.endsWith('.ferry.tar')) await verify(join(dir, f))
    }
    // upstream moves on before the rerun: a saved release is finished as it was resolved
    if (pending && !recorded) ctx.fx.move(cycle[(i + 1) % 3])
    const again = await run(dir, {extra: keepAll})
    assert.is(again.code, 0, again.stderr)
    if (pending && !recorded) {
      assert.is(again.json!.result.version, pending, 'the rerun finishes the saved release')
      assert.is(again.json!.result.changed, true)
    }
    assert.is((await listed(dir)).length, before.length + 1, `${landed.at(-1)}: one release more`)
    const newest = (await listed(dir)).at(-1)!.version
    assert.is(await k3sOf(dir, newest), cycle[i % 3])
    await assertClean(dir, [], newest)
  }
  await assertClean(dir)
  console.log(`  kills landed: ${landed.join(', ')}`)
  assert.ok(landed.filter((l) => l === 'mid-release').length >= 2, `kills landed: ${landed.join(', ')}`)
})

test('--keep prunes older full releases and every delta whose base or target went; the newest always stays', async () => {
  const dir = newDir()
  const versions: string[] = []
  for (const k3s of [K3S_OLD, K3S_NEW, K3S_NEWER, K3S_OLD]) {
    ctx.fx.move(k3s)
    const r = await run(dir, {extra: ['--keep', '2']})
    assert.is(r.code, 0, r.stderr)
    const res = r.json!.result
    versions.push(res.version)
    // a delta only from the release --keep leaves beside it: none is built to be pruned at once
    assert.equal(res.deltas.map((d: {from: string}) => d.from), versions.slice(-2, -1))
    assert.ok(!res.pruned.some((f: string) => f.includes(`edge-site-${res.version}`)), `${res.pruned}`)
  }
  const releases = await listed(dir)
  assert.equal(releases.map((r) => r.version), versions.slice(2))
  // the newest's deltas from the pruned releases went; the kept one's delta from a pruned base went too
  assert.equal(releases[1].deltas.map((d) => d.from), [versions[2]])
  assert.equal(releases[0].deltas, [])
  for (const v of versions.slice(0, 2)) assert.ok(!(await readdir(dir)).some((f) => f.startsWith(`edge-site-${v}.`)), `${v} pruned`)
  await assertClean(dir)

  ctx.fx.move(K3S_NEW)
  const last = await run(dir, {extra: ['--keep', '1']})
  assert.is(last.code, 0, last.stderr)
  assert.equal(last.json!.result.deltas, [], 'its deltas start from releases that are gone')
  assert.ok(last.json!.result.pruned.length > 0)
  assert.equal((await listed(dir)).map((r) => r.version), [last.json!.result.version])
  await assertClean(dir)
})

test('the upstream going away mid-run is exit 5, leaves the releases there untouched, and a later run finishes', async () => {
  ctx.fx.move(K3S_OLD)
  const dir = newDir()
  const store = {extra: freshStore()}
  assert.is((await run(dir, store)).code, 0)
  const before = await contents(dir)
  ctx.fx.move(K3S_NEWER)
  let down = false
  ctx.fx.intercept = (req, res, c) => {
    if (req.method === 'GET' && c.path === `/k3s/${K3S_NEWER}/k3s`) down = true
    if (!down) return false
    res.socket?.destroy()
    return true
  }
  const r = await run(dir, store)
  ctx.fx.intercept = undefined
  assert.is(r.code, 5, r.stderr + r.stdout)
  assert.is(r.json!.status, 5)
  const after = await contents(dir)
  for (const [f, digest] of Object.entries(before)) assert.is(after[f], digest, `${f} untouched`)
  assert.is((await listed(dir)).length, 1)
  // by the next run the channel moved on again: that run finishes the saved release first
  ctx.fx.move(K3S_NEW)
  const again = await run(dir, store)
  assert.is(again.code, 0, again.stderr)
  assert.is(await k3sOf(dir, again.json!.result.version), K3S_NEWER)
  assert.is((await listed(dir)).length, 2)
  await assertClean(dir)
})

test('the channel server unreachable when the run starts is exit 5, and nothing in the folder is written', async () => {
  ctx.fx.move(K3S_OLD)
  const dir = newDir()
  assert.is((await run(dir)).code, 0)
  const before = await contents(dir)
  ctx.fx.move(K3S_NEW)
  ctx.fx.channelDown(true)
  const r = await run(dir)
  ctx.fx.channelDown(false)
  assert.is(r.code, 5, r.stderr + r.stdout)
  assert.is(r.json!.error!.code, 'CHANNEL_UNREACHABLE')
  assert.equal(await contents(dir), before, 'not one file written, changed or removed')
})

test('a full disk during the build is exit 6, leaves the releases there untouched, and a run with room finishes', async () => {
  if (process.getuid?.() !== 0) return void console.log('  (not run: mounting a tmpfs needs root)')
  ctx.fx.move(K3S_OLD)
  const dir = newDir()
  await mkdir(dir)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir])
  try {
    assert.is((await run(dir)).code, 0)
    const before = await contents(dir)
    ctx.fx.move(K3S_NEW)
    const r = await run(dir)
    assert.is(r.code, 6, r.stderr + r.stdout)
    assert.match(r.json!.error!.message, /no space left/)
    const after = await contents(dir)
    for (const [f, digest] of Object.entries(before)) assert.is(after[f], digest, `${f} untouched`)
    assert.equal(Object.keys(after).filter((f) => !(f in before)), ['pending.lock.json'], 'only the saved lock is new')
    assert.is((await listed(dir)).length, 1)
    execFileSync('mount', ['-o', 'remount,size=16m', dir])
    const again = await run(dir)
    assert.is(again.code, 0, again.stderr)
    assert.is((await listed(dir)).length, 2)
    await assertClean(dir)
  } finally {
    execFileSync('umount', [dir])
  }
})

test.run()
