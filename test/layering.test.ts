// How the modules stand on each other: no import circles of any kind, and `bundle verify` of a
// full bundle loads only what checking a bundle takes (start-up is most of its time).
import {spawn} from 'node:child_process'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, normalize, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {makeBundleFactory} from './helpers/usb-bundle.js'

const SRC = fileURLToPath(new URL('../src', import.meta.url))
const BIN = fileURLToPath(new URL('../bin/run.js', import.meta.url))

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, {withFileTypes: true})) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await sources(p)))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

/** Every relative import of every file: static, type-only, re-exports and dynamic import(). */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>()
  const spec = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"](\.[^'"]+)['"]/gm
  for (const file of await sources(SRC)) {
    const text = await readFile(file, 'utf8')
    const deps = [...text.matchAll(spec)].map((m) => normalize(join(dirname(file), m[1])).replace(/\.js$/, '.ts'))
    graph.set(file, deps)
  }
  return graph
}

/** One circle, as a list of files, or undefined. */
function findCircle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (v: string): string[] | undefined => {
    state.set(v, 'open')
    path.push(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (state.get(w) === 'open') return [...path.slice(path.indexOf(w)), w]
      if (!state.has(w)) {
        const found = visit(w)
        if (found) return found
      }
    }
    path.pop()
    state.set(v, 'done')
    return undefined
  }
  for (const v of graph.keys()) {
    if (state.has(v)) continue
    const found = visit(v)
    if (found) return found
  }
  return undefined
}

const layering = suite('layering')

layering('no import circles in src/, counting type-only and dynamic imports', async () => {
  const graph = await importGraph()
  assert.ok(graph.size > 100, 'the sources were found')
  const circle = findCircle(graph)
  assert.equal(circle?.map((f) => relative(SRC, f)).join(' → '), undefined)
})

layering('the circle finder sees a circle through a type-only or dynamic import', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
  ])
  assert.equal(findCircle(g), ['a', 'b', 'c', 'a'])
  assert.equal(findCircle(new Map([['a', ['b']], ['b', []]])), undefined)
})

/** Runs the CLI with a resolve hook that lists every ES module it loads. */
async function modulesLoaded(dir: string, args: string[]): Promise<{code: number | null; modules: string[]; stderr: string}> {
  const list = join(dir, 'modules.txt')
  const hook = join(dir, 'hook.mjs')
  await writeFile(list, '')
  await writeFile(
    hook,
    `import {register} from 'node:module'\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(
      `import {appendFileSync} from 'node:fs'\nexport async function resolve(s, c, next) { const r = await next(s, c); if (r.url.startsWith('file:')) appendFileSync(${JSON.stringify(list)}, r.url + '\\n'); return r }`,
    )}))\n`,
  )
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', hook, BIN, ...args], {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', async (code) => resolve({code, stderr, modules: [...new Set((await readFile(list, 'utf8')).split('\n').filter(Boolean))]}))
  })
}

layering('bundle verify of a full bundle loads neither the build, the delta code, the network nor undici', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-layering-'))
  const factory = await makeBundleFactory(join(dir, 'f'), 'lean')
  try {
    const built = await factory.build('1.0.0', [{name: 'a.bin', size: 1 << 16, seed: 'a'}])
    const run = await modulesLoaded(dir, ['bundle', 'verify', built.path, '--key', factory.pub, '-q'])
    assert.equal(run.code, 0, run.stderr)
    const ours = run.modules.filter((u) => u.includes('/dist/')).map((u) => u.slice(u.indexOf('/dist/') + 6))
    assert.ok(ours.includes('commands/bundle/verify.js') && ours.includes('bundle/verify.js'), `the hook saw the command: ${ours.join(' ')}`)
    const heavy = ours.filter((m) => /^(bundle\/(build|assemble|write|delta|chunked|chunk-rebuild|push.*)|sources\/(http|oci\/registry.*|net\/transport)|manifest\/(lock|load)|chunks\/(rebuild|chunker.*)|store\/blob-store)\.js$/.test(m))
    assert.equal(heavy, [])
    assert.equal(run.modules.filter((u) => /node_modules\/(undici|yaml)\//.test(u)), [])
  } finally {
    await factory.close()
    await rm(dir, {recursive: true, force: true})
  }
})

layering.run()
