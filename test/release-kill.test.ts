// The release job killed with SIGKILL, through the ferry binary: at each step of a release, and at random
// moments of several releases; the rerun finishes the saved release (upstream having moved on meanwhile),
// release list only ever shows complete releases, and no half-made file ever has a final name.
import {existsSync} from 'node:fs'
import {readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {assertClean, k3sOf, listed, pendingVersion, releaseRunner, type ReleaseRunner, sha, timedRun} from './helpers/release-folder.js'
import {K3S_NEW, K3S_NEWER, K3S_OLD, makeReleaseUpstream, type ReleaseUpstream} from './helpers/release-upstream.js'

const test = suite('release-kill')
const ctx = {} as {fx: ReleaseUpstream; r: ReleaseRunner}

test.before(async () => {
  ctx.fx = await makeReleaseUpstream()
  ctx.r = releaseRunner(ctx.fx)
})

test.after(async () => {
  await ctx.fx.close()
  await rm(ctx.fx.root, {recursive: true, force: true})
})

test('kill -9 at each step of a release, then a rerun: it finishes that release (not a fresh one) with the same bytes and the folder is clean', async () => {
  const dir = ctx.r.newDir()
  const opts = {extra: ['--keep', '2', '--deltas', '1']}
  ctx.fx.move(K3S_OLD)
  assert.is((await ctx.r.run(dir, opts)).code, 0)
  const channel = [K3S_NEW, K3S_NEWER, K3S_OLD, K3S_NEW, K3S_NEWER, K3S_OLD]
  const points = ['release:pending', 'release:full', 'release:delta', 'release:changelog', 'release:recorded']
  for (const [i, point] of points.entries()) {
    ctx.fx.move(channel[i])
    const last = (await listed(dir)).at(-1)!.version
    const killed = await ctx.r.run(dir, {...opts, env: {FERRY_TEST_KILL_AT: point}})
    assert.is(killed.code, null, `${point}: killed`)
    const pending = (await pendingVersion(dir))!
    const recorded = (await listed(dir)).at(-1)!.version
    assert.is(recorded, point === 'release:recorded' ? pending : last, `${point}: release list shows only what was recorded`)
    const full = join(dir, `edge-site-${pending}.ferry.tar`)
    const fullBefore = existsSync(full) ? await sha(full) : undefined
    // upstream moves on before the rerun: finishing means the saved release, not one resolved afresh
    if (point !== 'release:recorded') ctx.fx.move(channel[i + 1])
    const again = await ctx.r.run(dir, opts)
    assert.is(again.code, 0, `${point}: ${again.stderr}`)
    const res = again.json!.result
    assert.is(res.version, pending, `${point}: the rerun finishes the saved release`)
    assert.is(res.changed, point !== 'release:recorded', point)
    assert.is(await k3sOf(dir, pending), channel[i], `${point}: with the k3s it was resolved with`)
    if (fullBefore) assert.is(res.bundle.sha256, fullBefore, `${point}: same bytes`)
    const releases = await listed(dir)
    assert.is(releases.at(-1)!.version, pending)
    assert.equal(releases.at(-1)!.deltas.map((d) => d.from), [releases.at(-2)!.version])
    await assertClean(ctx.r, dir)
    if (point !== 'release:recorded') ctx.fx.move(channel[i])
  }
})

test('kill -9 at random moments of several releases, then a rerun: release list only ever shows complete releases, and the rerun finishes the saved one', async () => {
  ctx.fx.move(K3S_OLD)
  const dir = ctx.r.newDir()
  const keepAll = ['--keep', '20']
  assert.is((await ctx.r.run(dir, {extra: keepAll})).code, 0)
  // one whole run with a change, to know when its steps come
  ctx.fx.move(K3S_NEW)
  const whole = await timedRun(ctx.r, dir, {extra: keepAll})
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
    const k = await timedRun(ctx.r, dir, {killAt, extra: keepAll})
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
      if (delta) await ctx.r.verify(join(dir, f), join(dir, `edge-site-${delta[2]}.ferry.tar`))
      else if (f.endsWith('.ferry.tar')) await ctx.r.verify(join(dir, f))
      else if (f.endsWith('.json')) JSON.parse(await readFile(join(dir, f), 'utf8'))
      else if (f.endsWith('.changes.md')) assert.match(await readFile(join(dir, f), 'utf8'), /\n## Files\n[^]*\n$/, `${f} is whole`)
      else assert.ok(f.endsWith('.ferry.tar.lock'), `${f}: a release file or the lock of a bundle being built`)
    }
    // upstream moves on before the rerun: a saved release is finished as it was resolved
    if (pending && !recorded) ctx.fx.move(cycle[(i + 1) % 3])
    const again = await ctx.r.run(dir, {extra: keepAll})
    assert.is(again.code, 0, again.stderr)
    if (pending && !recorded) {
      assert.is(again.json!.result.version, pending, 'the rerun finishes the saved release')
      assert.is(again.json!.result.changed, true)
    }
    assert.is((await listed(dir)).length, before.length + 1, `${landed.at(-1)}: one release more`)
    const newest = (await listed(dir)).at(-1)!.version
    assert.is(await k3sOf(dir, newest), cycle[i % 3])
    await assertClean(ctx.r, dir, [], newest)
  }
  await assertClean(ctx.r, dir)
  console.log(`  kills landed: ${landed.join(', ')}`)
  assert.ok(landed.filter((l) => l === 'mid-release').length >= 2, `kills landed: ${landed.join(', ')}`)
})

test.run()
