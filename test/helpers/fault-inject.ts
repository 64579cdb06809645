// Runs the ferry binary with one injected file-system fault: the LD_PRELOAD shim fault-inject.c (built with
// gcc on first use, cached by its source's hash) fails the Nth write, fsync, open-for-write or rename under
// the given path prefixes, counted across all threads and child processes of the run; or, with `nth: 0`,
// only counts them, so a sweep knows how many points a clean run has.
//
//   const clean = await ferryFaulted(args, {prefix: [root], nth: 0})                 // clean.counted ops
//   const r = await ferryFaulted(args, {prefix: [root], nth: 7, mode: 'sticky'})     // the 7th and later fail
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, readFileSync, renameSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {type CliResult, ferry, REPO} from './cli.js'

export type FaultKind = 'write' | 'fsync' | 'open' | 'rename'
export const FAULT_KINDS: FaultKind[] = ['write', 'fsync', 'open', 'rename']

export interface FaultPlan {
  /** absolute path prefixes (a folder with a trailing `/`, or the start of a file name) */
  prefix: string[]
  /** kinds counted, in one sequence; default all four */
  ops?: FaultKind[]
  /** 1-based operation to fail; 0 only counts */
  nth: number
  /** once (default): only the Nth fails; sticky: the Nth and every later one (a disk that stays full or dead) */
  mode?: 'once' | 'sticky'
  /** errno instead of each kind's own (write ENOSPC, fsync EIO, open EACCES, rename EIO) */
  errno?: number
}

export interface FaultedRun extends CliResult {
  /** operations counted (of the selected kinds) */
  counted: number
  /** operations of each kind under the prefixes */
  byKind: Record<FaultKind, number>
  failed: number
  /** the operation that failed first */
  fired?: {at: number; kind: FaultKind; path: string}
  /** "N kind path" per counted operation, when `log` was asked for */
  log: string[]
}

/** The shim's shared object, compiled once per source version (a temp name renamed in: parallel runs are safe). */
export function faultShim(): string {
  const source = join(REPO, 'test', 'helpers', 'fault-inject.c')
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12)
  const out = join(tmpdir(), `ferry-fault-inject-${hash}.so`)
  if (!existsSync(out)) {
    const temp = `${out}.${process.pid}.tmp`
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', temp, source, '-ldl'])
    renameSync(temp, out)
  }
  return out
}

/** Reads the shim's shared counters (layout of `struct shared` in fault-inject.c). */
function readShared(bytes: Buffer): Omit<FaultedRun, keyof CliResult | 'log'> {
  if (bytes.length < 60) return {counted: 0, byKind: {write: 0, fsync: 0, open: 0, rename: 0}, failed: 0}
  const long = (i: number) => Number(bytes.readBigInt64LE(i * 8))
  const byKind = Object.fromEntries(FAULT_KINDS.map((k, i) => [k, long(1 + i)])) as Record<FaultKind, number>
  const at = long(6)
  const path = bytes.subarray(60, 60 + 1024)
  const fired = at > 0 ? {at, kind: FAULT_KINDS[bytes.readInt32LE(56)], path: path.subarray(0, path.indexOf(0)).toString()} : undefined
  return {counted: long(0), byKind, failed: long(5), ...(fired ? {fired} : {})}
}

/** Runs `ferry ARGS` under the shim. */
export async function ferryFaulted(args: string[], plan: FaultPlan, opts: {env?: Record<string, string>; log?: boolean} = {}): Promise<FaultedRun> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-fault-'))
  try {
    const state = join(dir, 'state')
    const logFile = join(dir, 'log')
    await writeFile(state, '')
    const env: Record<string, string> = {
      LD_PRELOAD: faultShim(),
      FERRY_FAULT_STATE: state,
      FERRY_FAULT_PREFIX: plan.prefix.join(':'),
      FERRY_FAULT_OPS: (plan.ops ?? FAULT_KINDS).join(','),
      FERRY_FAULT_NTH: String(plan.nth),
      FERRY_FAULT_MODE: plan.mode ?? 'once',
      ...(plan.errno ? {FERRY_FAULT_ERRNO: String(plan.errno)} : {}),
      ...(opts.log ? {FERRY_FAULT_LOG: logFile} : {}),
      ...opts.env,
    }
    const run = await ferry(args, {env})
    const log = opts.log ? (await readFile(logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean) : []
    return {...run, ...readShared(await readFile(state)), log}
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

/** Up to `k` points spread evenly over 1..count, always with the first and the last (all of them when count ≤ k). */
export function spreadPoints(count: number, k: number): number[] {
  if (count <= k) return Array.from({length: count}, (_, i) => i + 1)
  const points = new Set<number>()
  for (let i = 0; i < k; i++) points.add(1 + Math.round((i * (count - 1)) / (k - 1)))
  return [...points]
}

/** Runs `fn` over `items`, `jobs` at a time, results in order. */
export async function inParallel<T, R>(items: T[], jobs: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({length: Math.min(jobs, items.length)}, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await fn(items[i], i)
      }
    }),
  )
  return out
}
