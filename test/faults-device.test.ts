// Fault sweeps of the device verbs through the ferry binary: a clean run's writes, fsyncs, opens for write
// and renames under the device's folders are counted, then each of up to FERRY_FAULT_POINTS (default 16)
// points spread over them is failed once (ENOSPC, EIO, EACCES, EIO) and sticky (that and every later one:
// a disk that stays full or dead). Each point must end in exit 6 with its JSON envelope (or 0 when the
// fault hit nothing the run needed), the device on the old release or the new one, whole, status saying
// so with the error, no temp file, and the next clean run succeeding.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {copyDevice, devicePrefixes, deviceProblems, makeSweepDevice, type SweepDevice} from './helpers/fault-device.js'
import {type FaultedRun, ferryFaulted, inParallel, spreadPoints} from './helpers/fault-inject.js'

const test = suite('faults: device import, apply and recover under injected faults')
const ctx = {} as {dir: string; sd: SweepDevice; n: number}
const POINTS = Number(process.env.FERRY_FAULT_POINTS ?? 16)
const JOBS = Number(process.env.FERRY_FAULT_JOBS ?? 2)

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-faults-device-'))
  ctx.sd = await makeSweepDevice(ctx.dir)
  ctx.n = 0
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

/** Problems of a faulted run's outcome: exit 6 with its envelope, or 0 when no fault mattered. */
function exitProblems(r: FaultedRun): string[] {
  if (r.code === 0 && r.json?.status === 0) return []
  if (r.code !== 6) return [`exit ${r.code} (${r.json?.error?.code ?? 'no envelope'}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`]
  if (r.json?.status !== 6 || !r.json.error?.code || !r.json.error.message) return [`exit 6 without its JSON envelope: ${r.stdout.slice(0, 200)}`]
  return []
}

interface Figures {
  tried: number
  held: number
  failures: string[]
}

function report(name: string, f: Figures, total: number): void {
  console.log(`faults: ${name}: ${f.held}/${f.tried} points held (of ${total} operations)`)
  if (process.env.FERRY_SHOW_FAULTS) console.log(f.failures.join('\n'))
}

async function sweep(name: string, total: number, check: (nth: number, mode: 'once' | 'sticky') => Promise<string[]>): Promise<void> {
  const points = spreadPoints(total, POINTS)
  const all: Figures = {tried: 0, held: 0, failures: []}
  for (const mode of ['once', 'sticky'] as const) {
    const found = await inParallel(points, JOBS, (p) => check(p, mode))
    const f: Figures = {tried: points.length, held: found.filter((x) => x.length === 0).length, failures: []}
    found.forEach((x, i) => x.length && f.failures.push(`${name} ${mode} at ${points[i]}: ${x.join('; ')}`))
    report(`${name} (${mode})`, f, total)
    all.failures.push(...f.failures)
  }
  assert.equal(all.failures, [])
}

const importArgs = (root: string) => ['device', 'import', ctx.sd.v2.path, '--root', root, '--json']

test('device import: every fault point leaves the committed release with the error, or 2.0.0 staged whole; the rerun stages it', async () => {
  const count = await copyDevice(ctx.sd.committed, join(ctx.dir, `dev-${ctx.n++}`))
  const clean = await ferryFaulted(importArgs(count.root), {prefix: devicePrefixes(count.root), nth: 0})
  assert.is(clean.code, 0, clean.stdout + clean.stderr)
  assert.ok(clean.counted > 20, `a clean import counts its operations (${JSON.stringify(clean.byKind)})`)
  await sweep('device import', clean.counted, async (nth, mode) => {
    const paths = await copyDevice(ctx.sd.committed, join(ctx.dir, `dev-${ctx.n++}`))
    const r = await ferryFaulted(importArgs(paths.root), {prefix: devicePrefixes(paths.root), nth, mode})
    const problems = exitProblems(r)
    let {problems: device, status} = await deviceProblems(ctx.sd, paths.root, {interruptedOk: mode === 'sticky'})
    if (status?.interrupted) {
      // a disk that failed even the journal's rewrite: status says so, and recover (the disk fixed) ends it
      const recover = await ferry(['device', 'recover', '--root', paths.root, '--json'])
      if (recover.code !== 0) problems.push(`recover after the dead disk: exit ${recover.code}: ${recover.stdout.slice(0, 300)}`)
      ;({problems: device, status} = await deviceProblems(ctx.sd, paths.root))
    }
    problems.push(...device)
    if (status) {
      if (r.code === 6) {
        if (status.state !== 'committed' || status.current?.version !== '1.0.0') problems.push(`after a failed import: ${status.state} on ${status.current?.version}`)
        if (status.staged) problems.push(`after a failed import ${status.staged.version} shows as staged`)
        // the reason is recorded unless the disk refused every write after the fault (sticky), or the lock
        // could not be created (the import stopped before it touched the journal)
        const beforeLock = r.fired?.path === paths.lock
        if (!status.lastError && mode === 'once' && !beforeLock) problems.push('the failed import left no lastError')
      } else if (r.code === 0 && status.staged?.version !== '2.0.0') problems.push(`exit 0 but staged is ${status.staged?.version}`)
    }
    const again = await ferry(importArgs(paths.root))
    const after = await deviceStatus(paths.root)
    if (again.code !== 0 || after?.staged?.version !== '2.0.0') problems.push(`the next import: exit ${again.code}, staged ${after?.staged?.version}: ${again.stdout.slice(0, 300)}`)
    const fired = r.fired ? ` [${r.fired.kind} ${r.fired.path.slice(paths.root.length)}]` : ''
    await rm(paths.root, {recursive: true, force: true})
    return problems.map((p) => p + fired)
  })
})

async function deviceStatus(root: string) {
  return (await deviceProblems(ctx.sd, root)).status
}

const applyArgs = (root: string) => ['device', 'apply', '--root', root, '--json']

test('device apply, then recover: every fault point ends on 1.0.0 or 2.0.0, whole; the next apply commits 2.0.0', async () => {
  const count = await copyDevice(ctx.sd.staged, join(ctx.dir, `dev-${ctx.n++}`))
  const clean = await ferryFaulted(applyArgs(count.root), {prefix: devicePrefixes(count.root), nth: 0})
  assert.is(clean.code, 0, clean.stdout + clean.stderr)
  assert.ok(clean.counted > 10, `a clean apply counts its operations (${JSON.stringify(clean.byKind)})`)
  await sweep('device apply + recover', clean.counted, async (nth, mode) => {
    const paths = await copyDevice(ctx.sd.staged, join(ctx.dir, `dev-${ctx.n++}`))
    const r = await ferryFaulted(applyArgs(paths.root), {prefix: devicePrefixes(paths.root), nth, mode})
    const problems = exitProblems(r)
    const recover = await ferry(['device', 'recover', '--root', paths.root, '--json'])
    // 7: recover rolled back an apply the fault stopped half-way
    if (recover.code !== 0 && !(recover.code === 7 && recover.json?.error?.code === 'ROLLED_BACK')) problems.push(`recover: exit ${recover.code}: ${recover.stdout.slice(0, 300)}`)
    const {problems: device, status} = await deviceProblems(ctx.sd, paths.root)
    problems.push(...device)
    if (r.code === 0 && (status?.state !== 'committed' || status.current?.version !== '2.0.0')) problems.push(`exit 0 but ${status?.state} on ${status?.current?.version}`)
    if (status && status.current?.version !== '2.0.0') {
      // the apply rolled back: import 2.0.0 again unless it is still staged, then apply
      if (!status.staged) {
        const imported = await ferry(importArgs(paths.root))
        if (imported.code !== 0) problems.push(`the next import: exit ${imported.code}: ${imported.stdout.slice(0, 300)}`)
      }
      const again = await ferry(applyArgs(paths.root))
      if (again.code !== 0) problems.push(`the next apply: exit ${again.code}: ${again.stdout.slice(0, 300)}`)
    }
    const after = await deviceProblems(ctx.sd, paths.root)
    if (after.status?.state !== 'committed' || after.status.current?.version !== '2.0.0') problems.push(`after the next apply: ${after.status?.state} on ${after.status?.current?.version}`)
    problems.push(...after.problems.map((p) => `after the next apply: ${p}`))
    const fired = r.fired ? ` [${r.fired.kind} ${r.fired.path.slice(paths.root.length)}]` : ''
    await rm(paths.root, {recursive: true, force: true})
    return problems.map((p) => p + fired)
  })
})

test('device recover of an apply killed in its trial: every fault point ends on 1.0.0 or 2.0.0, whole; a clean recover and apply then commit 2.0.0', async () => {
  // the device a power cut left mid-trial: recover re-runs the health checks and commits (journal, floor, blob collection)
  const killed = join(ctx.dir, 'template-killed')
  await copyDevice(ctx.sd.staged, killed)
  const kill = await ferry(applyArgs(killed), {env: {FERRY_TEST_KILL_AT: 'trial:health'}})
  assert.is(kill.code, null, `apply killed in its trial: ${kill.stdout}`)
  const recoverArgs = (root: string) => ['device', 'recover', '--root', root, '--json']
  const count = await copyDevice(killed, join(ctx.dir, `dev-${ctx.n++}`))
  const clean = await ferryFaulted(recoverArgs(count.root), {prefix: devicePrefixes(count.root), nth: 0})
  assert.is(clean.code, 0, clean.stdout + clean.stderr)
  await sweep('device recover', clean.counted, async (nth, mode) => {
    const paths = await copyDevice(killed, join(ctx.dir, `dev-${ctx.n++}`))
    const r = await ferryFaulted(recoverArgs(paths.root), {prefix: devicePrefixes(paths.root), nth, mode})
    const problems = r.code === 7 && r.json?.error?.code === 'ROLLED_BACK' ? [] : exitProblems(r)
    const first = await deviceProblems(ctx.sd, paths.root, {interruptedOk: true})
    problems.push(...first.problems)
    // the disk fixed, recover again (as the next boot does), then what the technician runs
    const again = await ferry(recoverArgs(paths.root))
    if (again.code !== 0 && !(again.code === 7 && again.json?.error?.code === 'ROLLED_BACK')) problems.push(`the next recover: exit ${again.code}: ${again.stdout.slice(0, 300)}`)
    const {problems: device, status} = await deviceProblems(ctx.sd, paths.root)
    problems.push(...device.map((p) => `after the next recover: ${p}`))
    if (status && status.current?.version !== '2.0.0') {
      if (!status.staged) await ferry(importArgs(paths.root))
      const applied = await ferry(applyArgs(paths.root))
      if (applied.code !== 0) problems.push(`the next apply: exit ${applied.code}: ${applied.stdout.slice(0, 300)}`)
    }
    const after = await deviceProblems(ctx.sd, paths.root)
    if (after.status?.state !== 'committed' || after.status.current?.version !== '2.0.0') problems.push(`at the end: ${after.status?.state} on ${after.status?.current?.version}`)
    const fired = r.fired ? ` [${r.fired.kind} ${r.fired.path.slice(paths.root.length)}]` : ''
    await rm(paths.root, {recursive: true, force: true})
    return problems.map((p) => p + fired)
  })
})

test.run()
