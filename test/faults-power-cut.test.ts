// Power cuts during `device import` and `device apply`, simulated from their traces (see helpers/power-cut.ts):
// the device lives on a loop-mounted ext4 image; import and apply of 2.0.0 run under `strace -f` recording
// every byte; the trace is replayed on a model of the device's var/ folder, and at 100 random operations
// the state a power cut there would leave (only what fsync had made durable) is written into a fresh
// folder, where `ferry device recover` runs as it does at boot. Each must end on 1.0.0 or 2.0.0, whole.
import {createHash} from 'node:crypto'
import {cp, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {makeExt4Stick, type MountedStick} from './helpers/fat.js'
import {deviceProblems, makeSweepDevice, type SweepDevice} from './helpers/fault-device.js'
import {inParallel} from './helpers/fault-inject.js'
import {replay, traceWithData} from './helpers/power-cut.js'

const test = suite('faults: power cuts during device import and apply')
const ctx = {} as {dir: string; sd: SweepDevice; disk: MountedStick; traces: string[]; root: string; before: string}
const CUTS = Number(process.env.FERRY_POWER_CUTS ?? 100)
const JOBS = Number(process.env.FERRY_FAULT_JOBS ?? 2)

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-power-cut-'))
  ctx.sd = await makeSweepDevice(ctx.dir)
  ctx.disk = await makeExt4Stick(join(ctx.dir, 'disk'), 64)
})

test.after(async () => {
  await ctx.disk?.unmount()
  await rm(ctx.dir, {recursive: true, force: true})
})

/** Every file and link under `dir` with its mode and a digest of its bytes (or its target). */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, {withFileTypes: true, recursive: true})) {
    const p = join(e.parentPath, e.name)
    if (e.isSymbolicLink()) out.push(`${p.slice(dir.length)} -> ${await readlink(p)}`)
    else if (e.isFile()) out.push(`${p.slice(dir.length)} ${((await stat(p)).mode & 0o777).toString(8)} ${createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 16)}`)
    else out.push(`${p.slice(dir.length)}/`)
  }
  return out.sort()
}

/** A small seeded generator, so a failing cut can be found again. */
function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

test('a power cut at any of 100 random points of import + apply: recover ends on 1.0.0 or 2.0.0, whole', async () => {
  const root = join(ctx.disk.dir, 'device')
  await cp(ctx.sd.committed, root, {recursive: true, verbatimSymlinks: true})
  const before = join(ctx.dir, 'before-var')
  await cp(join(root, 'var'), before, {recursive: true, verbatimSymlinks: true})
  const traces = [join(ctx.dir, 'import.trace'), join(ctx.dir, 'apply.trace')]
  const imported = await traceWithData(['device', 'import', ctx.sd.v2.path, '--root', root], traces[0])
  assert.is(imported.code, 0, imported.stdout + imported.stderr)
  const applied = await traceWithData(['device', 'apply', '--root', root], traces[1])
  assert.is(applied.code, 0, applied.stdout + applied.stderr)
  Object.assign(ctx, {traces, root, before})
  const model = await replay(traces, join(root, 'var'), before)
  assert.ok(model.ops > 50, `the traces hold the runs' operations (${model.ops})`)

  const seed = Number(process.env.FERRY_POWER_CUT_SEED ?? 14)
  const next = random(seed)
  // CUTS distinct operations, drawn without replacement (a partial Fisher-Yates shuffle)
  const all = Array.from({length: model.ops}, (_, i) => i)
  for (let i = 0; i < Math.min(CUTS, all.length); i++) {
    const j = i + Math.floor(next() * (all.length - i))
    ;[all[i], all[j]] = [all[j], all[i]]
  }
  const cuts = all.slice(0, CUTS).sort((a, b) => a - b)
  const roots: string[] = []
  for (const [i, cut] of cuts.entries()) {
    const r = join(ctx.dir, `cut-${i}`)
    await mkdir(r)
    await cp(join(root, 'etc'), join(r, 'etc'), {recursive: true})
    await cp(join(root, 'stand-in'), join(r, 'stand-in'), {recursive: true})
    await model.materialise(cut, join(r, 'var'))
    roots.push(r)
  }
  // the model itself: with no cut it gives exactly what the runs left on the disk (every file, every byte)
  const whole = join(ctx.dir, 'whole')
  await model.materialise(model.ops, join(whole, 'var'))
  assert.equal(await tree(join(whole, 'var')), await tree(join(root, 'var')))
  const ends: Record<string, number> = {}
  const found = await inParallel(roots, JOBS, async (r, i) => {
    const rec = await ferry(['device', 'recover', '--root', r, '--json'])
    const problems: string[] = []
    if (rec.code !== 0 && !(rec.code === 7 && rec.json?.error?.code === 'ROLLED_BACK')) problems.push(`recover: exit ${rec.code}: ${rec.stdout.slice(0, 300)}`)
    const {problems: device, status} = await deviceProblems(ctx.sd, r)
    problems.push(...device)
    ends[status?.current?.version ?? 'nothing'] = (ends[status?.current?.version ?? 'nothing'] ?? 0) + 1
    await rm(r, {recursive: true, force: true})
    return problems.length ? `cut at ${cuts[i]}/${model.ops} (${status?.state} on ${status?.current?.version}): ${problems.join('; ')}` : ''
  })
  const failures = found.filter(Boolean)
  console.log(`faults: power cut during device import + apply: ${cuts.length - failures.length}/${cuts.length} cuts held (of ${model.ops} operations, seed ${seed}; ended on ${JSON.stringify(ends)})`)
  assert.equal(failures, [])
})

test('the same cuts of a run that never flushed file bytes are caught: recover meets empty files', async () => {
  const model = await replay(ctx.traces, join(ctx.root, 'var'), ctx.before, {ignoreFileSyncs: true})
  let caught = 0
  // cuts after the import wrote its journal: state.json (and the slot's files) named but never flushed
  const cuts = spreadCuts(model.ops, 8)
  for (const [i, cut] of cuts.entries()) {
    const r = join(ctx.dir, `unflushed-${i}`)
    await mkdir(r)
    await cp(join(ctx.root, 'etc'), join(r, 'etc'), {recursive: true})
    await cp(join(ctx.root, 'stand-in'), join(r, 'stand-in'), {recursive: true})
    await model.materialise(cut, join(r, 'var'))
    const rec = await ferry(['device', 'recover', '--root', r, '--json'])
    const {problems} = await deviceProblems(ctx.sd, r)
    if (rec.code !== 0 || problems.length) caught++
    await rm(r, {recursive: true, force: true})
  }
  assert.ok(caught > 0, `an unflushed run must break some cut (${caught}/${cuts.length})`)
})

/** `k` cuts spread over the second half of the operations. */
function spreadCuts(ops: number, k: number): number[] {
  return Array.from({length: k}, (_, i) => Math.floor(ops / 2 + ((i + 1) * ops) / (2 * (k + 1))))
}

test.run()
