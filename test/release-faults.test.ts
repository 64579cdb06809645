// The release job under faults, through the ferry binary: --keep pruning, the upstream going away
// mid-run or unreachable from the start (exit 5) and a full disk during the build (exit 6, on a small
// tmpfs); neither fault touches the releases already made, and a later run finishes the saved release.
import {execFileSync} from 'node:child_process'
import {mkdir, readdir, rm, statfs} from 'node:fs/promises'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {assertClean, contents, k3sOf, listed, releaseRunner, type ReleaseRunner} from './helpers/release-folder.js'
import {K3S_NEW, K3S_NEWER, K3S_OLD, makeReleaseUpstream, type ReleaseUpstream} from './helpers/release-upstream.js'

const test = suite('release-faults')
const ctx = {} as {fx: ReleaseUpstream; r: ReleaseRunner}

test.before(async () => {
  ctx.fx = await makeReleaseUpstream()
  ctx.r = releaseRunner(ctx.fx)
})

test.after(async () => {
  await ctx.fx.close()
  await rm(ctx.fx.root, {recursive: true, force: true})
})

test('--keep prunes older full releases and every delta whose base or target went; the newest always stays', async () => {
  const dir = ctx.r.newDir()
  const versions: string[] = []
  for (const k3s of [K3S_OLD, K3S_NEW, K3S_NEWER, K3S_OLD]) {
    ctx.fx.move(k3s)
    const r = await ctx.r.run(dir, {extra: ['--keep', '2']})
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
  await assertClean(ctx.r, dir)

  ctx.fx.move(K3S_NEW)
  const last = await ctx.r.run(dir, {extra: ['--keep', '1']})
  assert.is(last.code, 0, last.stderr)
  assert.equal(last.json!.result.deltas, [], 'its deltas start from releases that are gone')
  assert.ok(last.json!.result.pruned.length > 0)
  assert.equal((await listed(dir)).map((r) => r.version), [last.json!.result.version])
  await assertClean(ctx.r, dir)
})

test('the upstream going away mid-run is exit 5, leaves the releases there untouched, and a later run finishes', async () => {
  ctx.fx.move(K3S_OLD)
  const dir = ctx.r.newDir()
  const store = {extra: ctx.r.freshStore()}
  assert.is((await ctx.r.run(dir, store)).code, 0)
  const before = await contents(dir)
  ctx.fx.move(K3S_NEWER)
  let down = false
  ctx.fx.intercept = (req, res, c) => {
    if (req.method === 'GET' && c.path === `/k3s/${K3S_NEWER}/k3s`) down = true
    if (!down) return false
    res.socket?.destroy()
    return true
  }
  const r = await ctx.r.run(dir, store)
  ctx.fx.intercept = undefined
  assert.is(r.code, 5, r.stderr + r.stdout)
  assert.is(r.json!.status, 5)
  const after = await contents(dir)
  for (const [f, digest] of Object.entries(before)) assert.is(after[f], digest, `${f} untouched`)
  assert.is((await listed(dir)).length, 1)
  // by the next run the channel moved on again: that run finishes the saved release first
  ctx.fx.move(K3S_NEW)
  const again = await ctx.r.run(dir, store)
  assert.is(again.code, 0, again.stderr)
  assert.is(await k3sOf(dir, again.json!.result.version), K3S_NEWER)
  assert.is((await listed(dir)).length, 2)
  await assertClean(ctx.r, dir)
})

test('the channel server unreachable when the run starts is exit 5, and nothing in the folder is written', async () => {
  ctx.fx.move(K3S_OLD)
  const dir = ctx.r.newDir()
  assert.is((await ctx.r.run(dir)).code, 0)
  const before = await contents(dir)
  ctx.fx.move(K3S_NEW)
  ctx.fx.channelDown(true)
  const r = await ctx.r.run(dir)
  ctx.fx.channelDown(false)
  assert.is(r.code, 5, r.stderr + r.stdout)
  assert.is(r.json!.error!.code, 'CHANNEL_UNREACHABLE')
  assert.equal(await contents(dir), before, 'not one file written, changed or removed')
})

test('a full disk during the build is exit 6, leaves the releases there untouched, and a run with room finishes', async () => {
  if (process.getuid?.() !== 0) return void console.log('  (not run: mounting a tmpfs needs root)')
  ctx.fx.move(K3S_OLD)
  const dir = ctx.r.newDir()
  await mkdir(dir)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir])
  try {
    assert.is((await ctx.r.run(dir)).code, 0)
    const before = await contents(dir)
    ctx.fx.move(K3S_NEW)
    const r = await ctx.r.run(dir)
    assert.is(r.code, 6, r.stderr + r.stdout)
    assert.match(r.json!.error!.message, /no space left/)
    const after = await contents(dir)
    for (const [f, digest] of Object.entries(before)) assert.is(after[f], digest, `${f} untouched`)
    assert.equal(Object.keys(after).filter((f) => !(f in before)), ['pending.lock.json'], 'only the saved lock is new')
    assert.is((await listed(dir)).length, 1)
    execFileSync('mount', ['-o', 'remount,size=16m', dir])
    const again = await ctx.r.run(dir)
    assert.is(again.code, 0, again.stderr)
    assert.is((await listed(dir)).length, 2)
    await assertClean(ctx.r, dir)
  } finally {
    execFileSync('umount', [dir])
  }
})

test('a disk that fills while a delta is written: exit 6, the full bundle just made is removed too, the releases there are untouched', async () => {
  if (process.getuid?.() !== 0) return void console.log('  (not run: mounting a tmpfs needs root)')
  ctx.fx.move(K3S_OLD)
  const dir = ctx.r.newDir()
  await mkdir(dir)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir])
  try {
    const first = await ctx.r.run(dir)
    assert.is(first.code, 0)
    const before = await contents(dir)
    // room for one more full bundle (every full bundle of this upstream has the same size) and a little
    const fs = await statfs(dir)
    const used = (fs.blocks - fs.bfree) * fs.bsize
    execFileSync('mount', ['-o', `remount,size=${used + first.json!.result.bundle.size + (128 << 10)}`, dir])
    ctx.fx.move(K3S_NEW)
    const r = await ferry(ctx.r.args(dir).filter((a) => a !== '--json'))
    assert.is(r.code, 6, r.stderr + r.stdout)
    assert.match(r.stdout, /^built edge-site-\S+\.ferry\.tar: /m)
    assert.match(r.stdout.trimEnd().split('\n').at(-1)!, /^building the delta from /)
    assert.match(r.stderr, /no space left/)
    const after = await contents(dir)
    for (const [f, digest] of Object.entries(before)) assert.is(after[f], digest, `${f} untouched`)
    assert.equal(Object.keys(after).filter((f) => !(f in before)), ['pending.lock.json'], 'only the saved lock is new')
    assert.is((await listed(dir)).length, 1)
    execFileSync('mount', ['-o', 'remount,size=16m', dir])
    const again = await ctx.r.run(dir)
    assert.is(again.code, 0, again.stderr)
    assert.is((await listed(dir)).length, 2)
    await assertClean(ctx.r, dir)
  } finally {
    execFileSync('umount', [dir])
  }
})

test.run()
