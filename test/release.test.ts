// The monthly release job end to end through the ferry binary, against a loopback upstream whose k3s
// channel server redirects as update.k3s.io does and moves between runs: nothing new writes nothing,
// a moved channel makes a full bundle, a delta and a changelog naming both k3s versions, `version: auto`
// only rises, and the folder's lock keeps a second run out while a first is live.
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import semver from 'semver'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {K3S_NEW, K3S_NEWER, K3S_OLD, makeReleaseUpstream, type ReleaseUpstream} from './helpers/release-upstream.js'

const test = suite('release')
const ctx = {} as {fx: ReleaseUpstream; dir: string; versions: string[]}

const run = (...extra: string[]) =>
  ferry(['release', 'run', ctx.fx.manifest, '--key', ctx.fx.key, '--out', ctx.dir, '--store', ctx.fx.store, '--json', ...extra])

/** Names, sizes and mtimes of everything in the folder. */
async function snapshot(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).sort()
  return Promise.all(names.map(async (n) => `${n} ${(await stat(join(dir, n))).size} ${(await stat(join(dir, n))).mtimeMs}`))
}

test.before(async () => {
  ctx.fx = await makeReleaseUpstream()
  ctx.dir = join(ctx.fx.root, 'releases')
  ctx.versions = []
})

test.after(async () => {
  await ctx.fx.close()
  await rm(ctx.fx.root, {recursive: true, force: true})
})

test('the first run makes the first release: full bundle, changelog with everything added, recorded in releases.json', async () => {
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  const res = r.json!.result
  assert.is(res.changed, true)
  assert.ok(existsSync(res.bundle.path))
  assert.equal(res.deltas, [])
  assert.equal(res.pruned, [])
  const changes = JSON.parse(await readFile(res.changelog.json, 'utf8'))
  assert.ok(changes.artifacts.length > 0)
  assert.ok(changes.artifacts.every((a: {change: string}) => a.change === 'added'))
  assert.ok(!existsSync(join(ctx.dir, 'pending.lock.json')))
  ctx.versions.push(res.version)
  const listed = await ferry(['release', 'list', ctx.dir, '--json'])
  assert.is(listed.code, 0)
  assert.equal(listed.json!.result.releases.map((x: {version: string}) => x.version), [res.version])
})

test('nothing new upstream: changed false, exit 0, and not one file written or touched', async () => {
  const before = await snapshot(ctx.dir)
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.changed, false)
  assert.is(r.json!.result.version, ctx.versions[0])
  assert.equal(await snapshot(ctx.dir), before)
})

test('the channel moves: full bundle, a delta from the last release that verifies against it, and a changelog naming both k3s versions', async () => {
  ctx.fx.move(K3S_NEW)
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  const res = r.json!.result
  assert.is(res.changed, true)
  assert.ok(semver.gt(res.version, ctx.versions[0]), `${res.version} > ${ctx.versions[0]}`)
  ctx.versions.push(res.version)
  assert.is(res.deltas.length, 1)
  assert.is(res.deltas[0].from, ctx.versions[0])
  assert.ok(res.deltas[0].size < res.bundle.size)
  const base = join(ctx.dir, `edge-site-${ctx.versions[0]}.ferry.tar`)
  const v = await ferry(['bundle', 'verify', res.deltas[0].path, '--base', base, '--key', ctx.fx.pub])
  assert.is(v.code, 0, v.stderr + v.stdout)

  const changes = JSON.parse(await readFile(res.changelog.json, 'utf8'))
  assert.is(changes.previous, ctx.versions[0])
  const k3s = changes.artifacts.find((a: {name: string}) => a.name === 'k3s/k3s-amd64')
  assert.is(k3s.change, 'changed')
  assert.is(k3s.old.version, K3S_OLD)
  assert.is(k3s.new.version, K3S_NEW)
  assert.ok(k3s.old.digest !== k3s.new.digest && k3s.new.size > 0)
  assert.equal(changes.deltas, [{from: ctx.versions[0], path: `edge-site-${res.version}-from-${ctx.versions[0]}.ferry.tar`, size: res.deltas[0].size}])
  // only k3s moved: the VM image, the Kubernetes binaries and the file are the same
  assert.equal(changes.artifacts.map((a: {name: string}) => a.name).sort(), ['k3s/k3s-airgap-images-amd64.tar.zst', 'k3s/k3s-amd64'])
  const md = await readFile(res.changelog.md, 'utf8')
  assert.match(md, `k3s/k3s-amd64 (k3s): ${K3S_OLD} → ${K3S_NEW}`)
  assert.match(md, `delta from ${ctx.versions[0]}`)
})

test('a second run while one is live is exit 8 and changes nothing; the first then finishes', async () => {
  ctx.fx.move(K3S_NEWER)
  let open!: () => void
  const gate = new Promise<void>((resolve) => (open = resolve))
  let arrived = false
  ctx.fx.intercept = async (_req, _res, c) => {
    if (c.path === `/k3s/${K3S_NEWER}/sha256sum-amd64.txt`) {
      arrived = true
      await gate
    }
    return false
  }
  const first = run()
  while (!arrived) await new Promise((r) => setTimeout(r, 50))
  const before = await snapshot(ctx.dir)
  const second = await run()
  assert.is(second.code, 8, second.stderr)
  assert.is(second.json!.error!.code, 'LOCKED')
  assert.equal(await snapshot(ctx.dir), before)
  open()
  ctx.fx.intercept = undefined
  const r = await first
  assert.is(r.code, 0, r.stderr)
  assert.ok(semver.gt(r.json!.result.version, ctx.versions[1]))
  ctx.versions.push(r.json!.result.version)
  // a delta from each of the last releases, newest first
  assert.equal(r.json!.result.deltas.map((d: {from: string}) => d.from), [ctx.versions[1], ctx.versions[0]])
})

test('a lock left by a process that is gone is broken', async () => {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString()
  await writeFile(join(ctx.dir, '.release.lock'), `${dead}\n`)
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.changed, false)
  assert.ok(!existsSync(join(ctx.dir, '.release.lock')))
})

test('version auto stays above every release, even several in one minute; release list shows them in order', async () => {
  const listed = await ferry(['release', 'list', ctx.dir, '--json'])
  const versions = listed.json!.result.releases.map((x: {version: string}) => x.version)
  assert.equal(versions, ctx.versions)
  for (let i = 1; i < versions.length; i++) assert.ok(semver.gt(versions[i], versions[i - 1]), `${versions[i]} > ${versions[i - 1]}`)
  const plain = await ferry(['release', 'list', ctx.dir])
  assert.is(plain.code, 0)
  assert.match(plain.stdout, `edge-site ${versions[2]}`)
  assert.match(plain.stdout, `delta from ${versions[1]}`)
})

test('off a terminal a run prints one plain line per step', async () => {
  const r = await ferry(['release', 'run', ctx.fx.manifest, '--key', ctx.fx.key, '--out', ctx.dir, '--store', ctx.fx.store])
  assert.is(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.ok(lines.length >= 2)
  assert.match(lines[0], /^resolving /)
  assert.match(lines.at(-1)!, /^unchanged: the last release /)
  assert.not.match(r.stdout + r.stderr, /\x1b\[|\r/)
})

test.run()
