// Fault sweeps of `bundle build` (output folder and blob store) and `usb write` (a stick folder) through the
// ferry binary, as in faults-device.test.ts: count a clean run's operations, fail each of up to
// FERRY_FAULT_POINTS spread points once and sticky. Every point: exit 6 with its envelope (or 0 with the
// very bytes of a clean run), nothing with a final name that is not complete (a bundle that verifies, a
// parts.json whose parts verify), no lock or temp file, and the next clean run succeeding (a build giving
// the same bytes as the clean one).
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry} from './helpers/cli.js'
import {makeKey, makeLock, type TestKey} from './helpers/device.js'
import {type FaultedRun, ferryFaulted, inParallel, spreadPoints} from './helpers/fault-inject.js'
import {standInArtifacts} from './helpers/stand-ins.js'

const test = suite('faults: bundle build and usb write under injected faults')
const ctx = {} as {dir: string; key: TestKey; lockFile: string; store: string; bundle: string; sha: string; n: number}
const POINTS = Number(process.env.FERRY_FAULT_POINTS ?? 16)
const JOBS = Number(process.env.FERRY_FAULT_JOBS ?? 2)
const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex')
const TEMP = /\.tmp$|\.partial$|\.lock$|^\./

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-faults-build-'))
  ctx.key = await makeKey(ctx.dir, 'release')
  const airgap = {name: 'k3s/k3s-airgap-images-amd64.tar.zst', kind: 'k3s' as const, dest: 'images/k3s-airgap-images-amd64.tar.zst', content: {size: 320 * 1024, seed: 'airgap'}}
  const lock = await makeLock({dir: ctx.dir, version: '1.0.0', signers: [ctx.key], artifacts: [...standInArtifacts('1.0.0', 'healthy'), airgap]})
  ctx.lockFile = join(ctx.dir, 'site.lock.json')
  await writeFile(ctx.lockFile, JSON.stringify(lock, null, 2) + '\n')
  ctx.store = join(ctx.dir, 'store')
  ctx.n = 0
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

function exitProblems(r: FaultedRun): string[] {
  if (r.code === 0 && r.json?.status === 0) return []
  if (r.code !== 6) return [`exit ${r.code} (${r.json?.error?.code ?? 'no envelope'}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`]
  if (r.json?.status !== 6 || !r.json.error?.code) return [`exit 6 without its JSON envelope: ${r.stdout.slice(0, 200)}`]
  return []
}

async function sweep(name: string, total: number, check: (nth: number, mode: 'once' | 'sticky') => Promise<string[]>): Promise<void> {
  const points = spreadPoints(total, POINTS)
  const failures: string[] = []
  for (const mode of ['once', 'sticky'] as const) {
    const found = await inParallel(points, JOBS, (p) => check(p, mode))
    console.log(`faults: ${name} (${mode}): ${found.filter((x) => !x.length).length}/${points.length} points held (of ${total} operations)`)
    found.forEach((x, i) => x.length && failures.push(`${name} ${mode} at ${points[i]}: ${x.join('; ')}`))
  }
  if (process.env.FERRY_SHOW_FAULTS) console.log(failures.join('\n'))
  assert.equal(failures, [])
}

const buildArgs = (out: string, store: string) => ['bundle', 'build', ctx.lockFile, '--key', ctx.key.priv, '--out', out, '--store', store, '--json']
const verifies = async (file: string) => (await ferry(['bundle', 'verify', file, '--key', ctx.key.pub])).code === 0

test('bundle build: every fault point is exit 6 with nothing that looks complete, or the very bundle; the rerun gives the same bytes', async () => {
  // the store as a build finds it: every artifact already there (the template each point copies)
  const template = join(ctx.dir, 'store-template')
  await cp(join(ctx.dir, 'store'), template, {recursive: true})
  const out = join(ctx.dir, 'out-clean')
  const store = join(ctx.dir, `store-${ctx.n++}`)
  await cp(template, store, {recursive: true})
  const clean = await ferryFaulted(buildArgs(out, store), {prefix: [out, store], nth: 0})
  assert.is(clean.code, 0, clean.stdout + clean.stderr)
  ctx.bundle = join(out, (await readdir(out)).find((n) => n.endsWith('.ferry.tar'))!)
  ctx.sha = await sha(ctx.bundle)
  await sweep('bundle build', clean.counted, async (nth, mode) => {
    const o = join(ctx.dir, `out-${ctx.n}`)
    const s = join(ctx.dir, `store-${ctx.n++}`)
    await cp(template, s, {recursive: true})
    const r = await ferryFaulted(buildArgs(o, s), {prefix: [o, s], nth, mode})
    const problems = exitProblems(r)
    const names = await readdir(o).catch(() => [] as string[])
    const left = names.filter((n) => TEMP.test(n))
    if (left.length) problems.push(`left ${left.join(', ')}`)
    for (const n of names.filter((x) => x.endsWith('.ferry.tar'))) {
      if (r.code === 0 && (await sha(join(o, n))) !== ctx.sha) problems.push(`exit 0 but ${n} differs from the clean build`)
      if (r.code !== 0 && !(await verifies(join(o, n)))) problems.push(`${n} has its final name but does not verify`)
    }
    const again = await ferry(buildArgs(o, s))
    const built = join(o, ctx.bundle.split('/').at(-1)!)
    if (again.code !== 0) problems.push(`the rerun: exit ${again.code}: ${again.stdout.slice(0, 300)}`)
    else if ((await sha(built)) !== ctx.sha) problems.push('the rerun gives other bytes than the clean build')
    const fired = r.fired ? ` [${r.fired.kind} ${r.fired.path.replace(ctx.dir, '')}]` : ''
    await rm(o, {recursive: true, force: true})
    await rm(s, {recursive: true, force: true})
    return problems.map((p) => p + fired)
  })
})

const usbArgs = (stick: string) => ['usb', 'write', ctx.bundle, stick, '--part-size', '64KiB', '--json']

test('usb write: every fault point is exit 6 with no parts.json unless every part verifies; the rerun writes a stick that verifies', async () => {
  const stick = join(ctx.dir, `stick-${ctx.n++}`)
  await mkdir(stick)
  const clean = await ferryFaulted(usbArgs(stick), {prefix: [stick], nth: 0})
  assert.is(clean.code, 0, clean.stdout + clean.stderr)
  assert.ok((await readdir(stick)).filter((n) => n.includes('.part-')).length >= 4, 'several parts')
  await sweep('usb write', clean.counted, async (nth, mode) => {
    const dir = join(ctx.dir, `stick-${ctx.n++}`)
    await mkdir(dir)
    const r = await ferryFaulted(usbArgs(dir), {prefix: [dir], nth, mode})
    const problems = exitProblems(r)
    const names = await readdir(dir)
    const left = names.filter((n) => TEMP.test(n))
    if (left.length) problems.push(`left ${left.join(', ')}`)
    if (names.some((n) => n.endsWith('.parts.json'))) {
      const v = await ferry(['usb', 'verify', dir])
      if (v.code !== 0) problems.push(`parts.json is there but the stick does not verify: ${v.stdout.slice(0, 200)}`)
    } else if (r.code === 0) problems.push('exit 0 without parts.json')
    const again = await ferry(usbArgs(dir))
    if (again.code !== 0) problems.push(`the rerun: exit ${again.code}: ${again.stdout.slice(0, 300)}`)
    else if (!(await verifies(dir))) problems.push('the rerun wrote a stick whose bundle does not verify')
    if (!existsSync(dir)) problems.push('the stick folder is gone')
    const fired = r.fired ? ` [${r.fired.kind} ${r.fired.path.replace(dir, '')}]` : ''
    await rm(dir, {recursive: true, force: true})
    return problems.map((p) => p + fired)
  })
})

test.run()
