// Fault sweep of `release run` (a second release: full bundle, a delta, changelog, releases.json) through the
// ferry binary, as in faults-device.test.ts: the release folder's and the store's writes, fsyncs, opens for
// write and renames of a clean run are counted, and FERRY_FAULT_POINTS spread points are failed once and
// sticky. Every point: exit 6 with its envelope (or 0), releases.json listing only complete releases that
// verify, no file with a final name that does not verify, no temp file or lock, and the rerun recording the
// new release.
import {cp, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {verifyRebuilds} from '../src/bundle/chunk-rebuild.js'
import {loadVerifyBase} from '../src/bundle/delta-base.js'
import {openBundleInput} from '../src/bundle/input.js'
import {verifyBundleStream} from '../src/bundle/verify.js'
import {readPublicKeys} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {type FaultedRun, ferryFaulted, inParallel, spreadPoints} from './helpers/fault-inject.js'
import {K3S_NEW, K3S_OLD, makeReleaseUpstream, type ReleaseUpstream} from './helpers/release-upstream.js'

const test = suite('faults: release run under injected faults')
const ctx = {} as {fx: ReleaseUpstream; dir: string; n: number}
const POINTS = Number(process.env.FERRY_FAULT_POINTS ?? 15)
const JOBS = Number(process.env.FERRY_FAULT_JOBS ?? 2)
const TEMP = /\.tmp$|\.partial$|^\.|^lock$|\.lock$/

test.before(async () => {
  ctx.fx = await makeReleaseUpstream()
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-faults-release-'))
  ctx.n = 0
})

test.after(async () => {
  await ctx.fx.close()
  await rm(ctx.fx.root, {recursive: true, force: true})
  await rm(ctx.dir, {recursive: true, force: true})
})

const args = (out: string, store: string) => ['release', 'run', ctx.fx.manifest, '--key', ctx.fx.key, '--out', out, '--store', store, '--deltas', '1', '--json']

async function verify(file: string, baseFile?: string): Promise<boolean> {
  try {
    const keys = await readPublicKeys([ctx.fx.pub])
    const input = await openBundleInput(file)
    const base = baseFile ? await loadVerifyBase(baseFile) : undefined
    const report = await verifyBundleStream(input.open(), {keys, totalSize: input.size, ...(base ? {base} : {})})
    if (base) await verifyRebuilds(report.manifest, {path: input.label, offsets: report.offsets}, base)
    return true
  } catch {
    return false
  }
}

/** What is wrong with the folder: releases.json names only what verifies, no other final name is half-made, nothing temp. */
async function folderProblems(dir: string): Promise<{problems: string[]; versions: string[]}> {
  const problems: string[] = []
  const index = JSON.parse(await readFile(join(dir, 'releases.json'), 'utf8'))
  const listed = new Set<string>(['releases.json', 'pending.lock.json'])
  for (const r of index.releases) {
    for (const f of [r.bundle.path, r.lock, r.changelog.md, r.changelog.json, ...r.deltas.map((d: {path: string}) => d.path)]) listed.add(f)
    if (!(await verify(join(dir, r.bundle.path)))) problems.push(`listed ${r.bundle.path} does not verify`)
    for (const d of r.deltas) {
      const base = index.releases.find((x: {version: string}) => x.version === d.from)
      if (!base || !(await verify(join(dir, d.path), join(dir, base.bundle.path)))) problems.push(`listed ${d.path} does not verify`)
    }
  }
  const names = await readdir(dir)
  const left = names.filter((n) => TEMP.test(n))
  if (left.length) problems.push(`left ${left.join(', ')}`)
  for (const n of names.filter((x) => !listed.has(x) && x.endsWith('.ferry.tar'))) {
    const base = /-from-(.+)\.ferry\.tar$/.exec(n)?.[1]
    if (!(await verify(join(dir, n), base ? join(dir, `edge-site-${base}.ferry.tar`) : undefined))) problems.push(`${n} has its final name but does not verify`)
  }
  return {problems, versions: index.releases.map((r: {version: string}) => r.version)}
}

function exitProblems(r: FaultedRun): string[] {
  if (r.code === 0 && r.json?.status === 0) return []
  if (r.code !== 6) return [`exit ${r.code} (${r.json?.error?.code ?? 'no envelope'}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`]
  if (r.json?.status !== 6 || !r.json.error?.code) return [`exit 6 without its JSON envelope: ${r.stdout.slice(0, 200)}`]
  return []
}

test('release run: every fault point leaves only complete releases listed; the rerun records the new one', async () => {
  // the folder as the month finds it: one release made with the old k3s; the store holding both months
  const template = join(ctx.dir, 'releases-template')
  const store = join(ctx.dir, 'store-template')
  ctx.fx.move(K3S_OLD)
  assert.is((await ferry(args(template, store))).code, 0)
  ctx.fx.move(K3S_NEW)
  const warm = join(ctx.dir, 'releases-warm')
  await cp(template, warm, {recursive: true})
  assert.is((await ferry(args(warm, store))).code, 0, 'a clean second release')
  const fresh = async () => {
    const o = join(ctx.dir, `releases-${ctx.n}`)
    const s = join(ctx.dir, `store-${ctx.n++}`)
    await cp(template, o, {recursive: true})
    await cp(store, s, {recursive: true})
    return {o, s}
  }
  const c = await fresh()
  const clean = await ferryFaulted(args(c.o, c.s), {prefix: [c.o, c.s], nth: 0})
  assert.is(clean.code, 0, clean.stdout + clean.stderr)
  assert.is(clean.json?.result.changed, true)
  const before = (await folderProblems(template)).versions
  const points = spreadPoints(clean.counted, POINTS)
  const failures: string[] = []
  for (const mode of ['once', 'sticky'] as const) {
    const found = await inParallel(points, JOBS, async (nth) => {
      const {o, s} = await fresh()
      const r = await ferryFaulted(args(o, s), {prefix: [o, s], nth, mode})
      const problems = exitProblems(r)
      const after = await folderProblems(o)
      problems.push(...after.problems)
      if (r.code !== 0 && after.versions.join() !== before.join()) problems.push(`a failed run recorded ${after.versions.join(', ')}`)
      const again = await ferry(args(o, s))
      if (again.code !== 0) problems.push(`the rerun: exit ${again.code}: ${again.stdout.slice(0, 300)}`)
      const done = await folderProblems(o)
      problems.push(...done.problems.map((p) => `after the rerun: ${p}`))
      if (done.versions.length !== before.length + 1) problems.push(`after the rerun: releases ${done.versions.join(', ')}`)
      const fired = r.fired ? ` [${r.fired.kind} ${r.fired.path.replace(ctx.dir, '')}]` : ''
      await rm(o, {recursive: true, force: true})
      await rm(s, {recursive: true, force: true})
      return problems.map((p) => p + fired)
    })
    console.log(`faults: release run (${mode}): ${found.filter((x) => !x.length).length}/${points.length} points held (of ${clean.counted} operations)`)
    found.forEach((x, i) => x.length && failures.push(`release run ${mode} at ${points[i]}: ${x.join('; ')}`))
  }
  if (process.env.FERRY_SHOW_FAULTS) console.log(failures.join('\n'))
  assert.equal(failures, [])
})

test.run()
