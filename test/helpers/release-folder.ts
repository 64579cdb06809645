// What the release tests share: running `ferry release run` on a folder of the loopback upstream, and
// checking a release folder: its files, what release list shows, and that every bundle in it verifies.
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import * as assert from 'uvu/assert'
import {verifyRebuilds} from '../../src/bundle/chunk-rebuild.js'
import {loadVerifyBase} from '../../src/bundle/delta-base.js'
import {openBundleInput} from '../../src/bundle/input.js'
import {verifyBundleStream} from '../../src/bundle/verify.js'
import {readPublicKeys} from '../../src/trust/keys.js'
import {ferry, REPO} from './cli.js'
import type {ReleaseUpstream} from './release-upstream.js'

export function releaseRunner(fx: ReleaseUpstream) {
  let folders = 0
  const args = (dir: string, ...extra: string[]) => ['release', 'run', fx.manifest, '--key', fx.key, '--out', dir, ...(extra.includes('--store') ? [] : ['--store', fx.store]), '--json', ...extra]
  return {
    args,
    run: (dir: string, opts: {env?: Record<string, string>; extra?: string[]} = {}) => ferry(args(dir, ...(opts.extra ?? [])), {env: opts.env}),
    /** A store of its own: what the shared one already holds is not fetched again. */
    freshStore: () => ['--store', join(fx.root, `store-${folders++}`)],
    newDir: () => join(fx.root, `releases-${folders++}`),
    /** A bundle verifies (signature, every blob; a delta against its base, chunked artifacts rebuilt). */
    verify: async (file: string, baseFile?: string): Promise<void> => {
      const keys = await readPublicKeys([fx.pub])
      const input = await openBundleInput(file)
      const base = baseFile ? await loadVerifyBase(baseFile) : undefined
      const report = await verifyBundleStream(input.open(), {keys, totalSize: input.size, ...(base ? {base} : {})})
      if (base) await verifyRebuilds(report.manifest, {path: input.label, offsets: report.offsets}, base)
    },
  }
}

export type ReleaseRunner = ReturnType<typeof releaseRunner>

export const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex')

/** Every file in the folder with its sha256: what "untouched" is checked against. */
export async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(dir)).sort()) out[name] = await sha(join(dir, name))
  return out
}

export async function listed(dir: string): Promise<Array<{version: string; path: string; deltas: Array<{from: string; path: string}>}>> {
  const r = await ferry(['release', 'list', dir, '--json'])
  assert.is(r.code, 0, r.stderr)
  return r.json!.result.releases
}

/**
 * The folder holds exactly what releases.json lists (plus `allowed`), and every bundle it lists is
 * complete: full bundles verify, deltas verify against their base (only those of release `only`, when given).
 */
export async function assertClean(runner: ReleaseRunner, dir: string, allowed: string[] = [], only?: string): Promise<void> {
  const index = JSON.parse(await readFile(join(dir, 'releases.json'), 'utf8'))
  const named = new Set<string>(['releases.json', ...allowed])
  for (const r of index.releases) for (const f of [r.bundle.path, r.lock, r.changelog.md, r.changelog.json, ...r.deltas.map((d: {path: string}) => d.path)]) named.add(f)
  assert.equal((await readdir(dir)).filter((f) => !named.has(f)).sort(), [], 'nothing beyond what releases.json lists')
  for (const r of index.releases) {
    if (only !== undefined && r.version !== only) continue
    await runner.verify(join(dir, r.bundle.path))
    for (const d of r.deltas) {
      const base = index.releases.find((x: {version: string}) => x.version === d.from)
      await runner.verify(join(dir, d.path), join(dir, base.bundle.path))
    }
  }
}

export const pendingVersion = async (dir: string): Promise<string | undefined> =>
  existsSync(join(dir, 'pending.lock.json')) ? JSON.parse(await readFile(join(dir, 'pending.lock.json'), 'utf8')).version : undefined

/** The k3s version a recorded release carries, from its changelog. */
export async function k3sOf(dir: string, version: string): Promise<string> {
  const changes = JSON.parse(await readFile(join(dir, `edge-site-${version}.changes.json`), 'utf8'))
  return changes.artifacts.find((a: {name: string}) => a.name === 'k3s/k3s-amd64').new.version
}

/**
 * Runs release plain (one line per step on stdout), noting when each line arrived (ms after the start);
 * `killAt` is asked at the start (line '') and at each line, and may answer in how many ms to SIGKILL it.
 */
export function timedRun(runner: ReleaseRunner, dir: string, opts: {killAt?: (line: string, at: number) => number | undefined; extra?: string[]} = {}): Promise<{lines: Array<{line: string; at: number}>; killed: boolean; code: number | null}> {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(join(REPO, 'bin/run.js'), runner.args(dir, ...(opts.extra ?? [])).filter((a) => a !== '--json'), {stdio: ['ignore', 'pipe', 'ignore'], env: {...process.env, NO_COLOR: '1'}})
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
