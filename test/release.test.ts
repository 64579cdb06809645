// The monthly release job end to end through the ferry binary, against a loopback upstream whose k3s
// channel server redirects as update.k3s.io does and moves between runs: nothing new writes nothing,
// a moved channel makes a full bundle, a delta and a changelog naming both k3s versions, `version: auto`
// only rises, and the folder's lock keeps a second run out while a first is live.
import {spawn, spawnSync} from 'node:child_process'
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

/** The keys DESIGN.md gives `release run --json`, always all of them. */
const RESULT_KEYS = ['bundle', 'changed', 'changelog', 'deltas', 'pruned', 'version']

/** The result has exactly the contract's keys, each of its type. */
function assertResultShape(res: Record<string, unknown> & {bundle: Record<string, unknown>; deltas: Array<Record<string, unknown>>; changelog: Record<string, unknown>}) {
  assert.equal(Object.keys(res).sort(), RESULT_KEYS)
  assert.type(res.changed, 'boolean')
  assert.type(res.version, 'string')
  assert.equal(Object.keys(res.bundle).sort(), ['path', 'sha256', 'size'])
  assert.match(res.bundle.sha256 as string, /^[0-9a-f]{64}$/)
  assert.type(res.bundle.size, 'number')
  for (const d of res.deltas) assert.equal(Object.keys(d).sort(), ['from', 'path', 'size'])
  assert.ok(existsSync(res.changelog.md as string) && existsSync(res.changelog.json as string), 'the changelog files are there')
  assert.ok(Array.isArray(res.pruned))
}

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
  assertResultShape(res)
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
  const entry = listed.json!.result.releases[0]
  assert.equal(entry.version, res.version)
  assert.equal(listed.json!.result.releases.length, 1)
  // release list --json: version, path, created and deltas [{from, path, size}] of each release
  assert.is(entry.path, res.bundle.path)
  assert.ok(!Number.isNaN(Date.parse(entry.created)), entry.created)
  assert.equal(entry.deltas, [])
})

test('nothing new upstream: changed false, exit 0, and not one file written or touched', async () => {
  const before = await snapshot(ctx.dir)
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  const res = r.json!.result
  assertResultShape(res)
  assert.is(res.changed, false)
  assert.is(res.version, ctx.versions[0])
  // the last release's bundle and changelog, nothing pruned
  assert.is(res.bundle.path, join(ctx.dir, `edge-site-${ctx.versions[0]}.ferry.tar`))
  assert.is(res.changelog.json, join(ctx.dir, `edge-site-${ctx.versions[0]}.changes.json`))
  assert.equal(res.pruned, [])
  assert.equal(await snapshot(ctx.dir), before)
})

test('the channel moves: full bundle, a delta from the last release that verifies against it, and a changelog naming both k3s versions', async () => {
  ctx.fx.move(K3S_NEW)
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  const res = r.json!.result
  assertResultShape(res)
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
  const listed = (await ferry(['release', 'list', ctx.dir, '--json'])).json!.result.releases
  assert.equal(listed.at(-1).deltas, r.json!.result.deltas, 'release list names the same deltas, paths and sizes')
})

test('a lock left by a process that is gone is broken', async () => {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString()
  await writeFile(join(ctx.dir, '.release.lock'), `${dead}\n`)
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json!.result.changed, false)
  assert.ok(!existsSync(join(ctx.dir, '.release.lock')))
})

test('a lock whose pid another process took since (after a reboot) is broken; that process\'s own lock holds (exit 8)', async () => {
  const other = spawn('sleep', ['60'], {stdio: 'ignore'})
  try {
    const stat = await readFile(`/proc/${other.pid}/stat`, 'utf8')
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim()
    await writeFile(join(ctx.dir, '.release.lock'), `${other.pid}\n${boot} ${start}\n`)
    const held = await run()
    assert.is(held.code, 8, held.stderr)
    assert.match(held.json!.error!.message, `process ${other.pid} holds`)
    await writeFile(join(ctx.dir, '.release.lock'), `${other.pid}\n00000000-0000-0000-0000-000000000000 ${start}\n`)
    const r = await run()
    assert.is(r.code, 0, r.stderr)
    assert.is(r.json!.result.changed, false)
    assert.ok(!existsSync(join(ctx.dir, '.release.lock')))
  } finally {
    other.kill('SIGKILL')
  }
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

test('a patched VM image: each delta carries it as chunks (a pack of the changed ones) that rebuild against the base', async () => {
  ctx.fx.move(K3S_NEWER)
  await ctx.fx.patchVm(200 << 10, 4096, 'month-4')
  const r = await run()
  assert.is(r.code, 0, r.stderr)
  const res = r.json!.result
  assert.is(res.changed, true)
  assert.equal(res.deltas.map((d: {from: string}) => d.from), [ctx.versions[2], ctx.versions[1], ctx.versions[0]])
  ctx.versions.push(res.version)
  const changes = JSON.parse(await readFile(res.changelog.json, 'utf8'))
  assert.equal(changes.artifacts.map((a: {name: string; change: string}) => `${a.name} ${a.change}`), ['vm/azurelinux changed'])
  for (const d of res.deltas) {
    const info = await ferry(['bundle', 'inspect', d.path, '--json'])
    assert.is(info.code, 0, info.stderr)
    const vm = info.json!.result.chunked.find((c: {name: string}) => c.name === 'vm/azurelinux')
    assert.is(vm.carried, 'chunks', `the delta from ${d.from} carries the image as chunks`)
    assert.ok(vm.reused > 0 && vm.newBytes < changes.artifacts[0].new.size / 2, `${vm.newBytes} new bytes of ${changes.artifacts[0].new.size}`)
    const v = await ferry(['bundle', 'verify', d.path, '--base', join(ctx.dir, `edge-site-${d.from}.ferry.tar`), '--key', ctx.fx.pub, '--json'])
    assert.is(v.code, 0, v.stderr + v.stdout)
    assert.is(v.json!.result.rebuilt, 1)
  }
})

test('--deltas defaults to 3: the newest three releases, newest first; off a terminal each step is one plain line', async () => {
  await ctx.fx.patchVm(300 << 10, 4096, 'month-5')
  const r = await ferry(['release', 'run', ctx.fx.manifest, '--key', ctx.fx.key, '--out', ctx.dir, '--store', ctx.fx.store])
  assert.is(r.code, 0, r.stderr)
  const releases = (await ferry(['release', 'list', ctx.dir, '--json'])).json!.result.releases
  const made = releases.at(-1)
  assert.ok(!ctx.versions.includes(made.version))
  assert.equal(made.deltas.map((d: {from: string}) => d.from), [ctx.versions[3], ctx.versions[2], ctx.versions[1]])
  ctx.versions.push(made.version)
  const steps = [
    /^resolving \S+site\.yaml$/,
    new RegExp(`^resolved edge-site ${made.version}: \\d+ artifact\\(s\\); lock saved as pending\\.lock\\.json$`),
    /^building the full bundle \S+\.ferry\.tar$/,
    /^built \S+\.ferry\.tar: [\d.]+ \S+, sha256 [0-9a-f]{64}$/,
    ...made.deltas.flatMap((d: {from: string}) => [new RegExp(`^building the delta from ${d.from}$`), new RegExp(`^built edge-site-${made.version}-from-${d.from}\\.ferry\\.tar: [\\d.]+ \\S+$`)]),
    /^changelog \S+\.changes\.md: 1 changed, 0 added, 0 removed$/,
    new RegExp(`^recorded edge-site ${made.version} in releases\\.json$`),
    /^released \S+: \S+ \([\d.]+ \S+\), 3 delta\(s\), changelog \S+\.changes\.md$/,
  ]
  const lines = r.stdout.trimEnd().split('\n')
  assert.is(lines.length, steps.length, r.stdout)
  for (const [i, re] of steps.entries()) assert.match(lines[i], re)
  // and no spinner, no colour, no carriage return, on either stream
  assert.not.match(r.stdout + r.stderr, /\x1b\[|\r/)
})

test('--keep defaults to 6: the seventh release prunes the first, with every delta that starts from it', async () => {
  await ctx.fx.patchVm(100 << 10, 4096, 'month-6')
  const sixth = await run()
  assert.is(sixth.code, 0, sixth.stderr)
  assert.equal(sixth.json!.result.pruned, [])
  ctx.versions.push(sixth.json!.result.version)
  await ctx.fx.patchVm(400 << 10, 4096, 'month-7')
  const seventh = await run()
  assert.is(seventh.code, 0, seventh.stderr)
  ctx.versions.push(seventh.json!.result.version)
  const [first, ...rest] = ctx.versions
  const gone = [`${first}.ferry.tar`, `${first}.lock.json`, `${first}.changes.md`, `${first}.changes.json`, ...rest.slice(0, 3).map((v) => `${v}-from-${first}.ferry.tar`)]
  assert.equal([...seventh.json!.result.pruned].sort(), gone.map((f) => join(ctx.dir, `edge-site-${f}`)).sort())
  for (const f of gone) assert.ok(!existsSync(join(ctx.dir, `edge-site-${f}`)), `${f} removed`)
  const releases = (await ferry(['release', 'list', ctx.dir, '--json'])).json!.result.releases
  assert.equal(releases.map((x: {version: string}) => x.version), rest)
  assert.ok(releases.every((x: {deltas: Array<{from: string}>}) => x.deltas.every((d) => d.from !== first)))
  ctx.versions.shift()
})

test.run()
