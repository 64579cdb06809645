// Output for people and for scripts: progress on a terminal only, plain lines elsewhere, NO_COLOR,
// the --json envelope and exit codes of usage errors.
import {execFile} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {basename, join} from 'node:path'
import {PassThrough} from 'node:stream'
import {promisify} from 'node:util'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runDemo} from '../src/demo/run.js'
import {formatBytes, parseSize} from '../src/format.js'
import {ProgressRenderer} from '../src/ui/progress.js'
import {ferry, REPO} from './helpers/cli.js'

const exec = promisify(execFile)
const ctx = {} as {dir: string; bundle: string; pub: string; release: Awaited<ReturnType<typeof runDemo>>['release']}
const test = suite('ui')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-ui-'))
  const demo = await runDemo({workDir: join(ctx.dir, 'work'), outDir: join(ctx.dir, 'out')}).catch((e) => {
    console.error(e)
    throw e
  })
  ctx.bundle = demo.bundle
  ctx.pub = demo.publicKey
  ctx.release = demo.release
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('off a terminal, progress is plain periodic lines with bytes, rate and ETA', () => {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (d) => (text += d))
  let now = 1_000_000
  const r = new ProgressRenderer({stream: stream as unknown as NodeJS.WriteStream, tty: false, interval: 0, clock: () => now})
  r.update({phase: 'fetch', done: 0, total: 4 << 20})
  now += 1000
  r.update({phase: 'fetch', item: 'k3s', done: 1 << 20, total: 4 << 20})
  r.stop()
  assert.match(text, /^fetch k3s: 1\.0 MiB \/ 4\.0 MiB, 1\.0 MiB\/s, ETA 3s$/m)
  assert.not.match(text, /\x1b\[/)
})

test('a rate counts from the phase\'s first event, and a phase too short to time shows none', () => {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (d) => (text += d))
  let now = 1_000_000
  const r = new ProgressRenderer({stream: stream as unknown as NodeJS.WriteStream, tty: false, interval: 0, clock: () => now})
  // 30 MiB were already in place when the write began: 2 MiB in 2 s is 1 MiB/s
  r.update({phase: 'write', done: 30 << 20, total: 40 << 20})
  now += 2000
  r.update({phase: 'write', done: 32 << 20, total: 40 << 20})
  assert.match(text, /^write: 32\.0 MiB \/ 40\.0 MiB, 1\.0 MiB\/s, ETA 8s$/m)
  r.update({phase: 'verify', done: 0, total: 8 << 20})
  now += 5
  r.update({phase: 'verify', done: 8 << 20, total: 8 << 20})
  assert.match(text, /^verify: 8\.0 MiB \/ 8\.0 MiB$/m)
  r.update({phase: 'resolve', item: 'app', done: 1, total: 2, unit: 'images'})
  assert.match(text, /^resolve app: 1 \/ 2 images$/m)
})

test('on a terminal (a real pty), a spinner shows the phase and bytes; NO_COLOR leaves out colour', async () => {
  const cmd = `stty cols 120 rows 40; node bin/run.js bundle verify ${ctx.bundle} --key ${ctx.pub}`
  const {stdout} = await exec('script', ['-qec', cmd, '/dev/null'], {cwd: REPO, env: {...process.env, NO_COLOR: '1', FORCE_COLOR: '0'}})
  assert.match(stdout, /verify: [\d.]+ MiB \/ [\d.]+ MiB/)
  assert.match(stdout, /OK .*demo-site 1\.0\.0/)
  assert.not.match(stdout, /\x1b\[3\dm/, 'no colour codes with NO_COLOR')
})

test('with --json on a non-terminal, stdout is exactly one JSON object', async () => {
  const r = await ferry(['bundle', 'verify', ctx.bundle, '--key', ctx.pub, '--json'])
  assert.is(r.code, 0)
  assert.is(r.json?.status, 0)
  assert.is(r.json?.result.name, 'demo-site')
})

test('usage errors: exit 2, one line, JSON envelope with a code', async () => {
  const r = await ferry(['bundle', 'verify', '--json'])
  assert.is(r.code, 2)
  assert.is(r.json?.error?.code, 'USAGE')
  assert.ok(!r.json?.error?.message.includes('\n'))
  const k = await ferry(['bundle', 'verify', ctx.bundle])
  assert.is(k.code, 2)
  assert.match(k.stderr, /--key/)
})

test('every command has help with examples', async () => {
  for (const cmd of [['bundle', 'build'], ['bundle', 'verify'], ['bundle', 'inspect'], ['manifest', 'lock'], ['keys', 'generate'], ['keys', 'list'], ['demo']]) {
    const r = await ferry([...cmd, '--help'])
    assert.is(r.code, 0, cmd.join(' '))
    assert.match(r.stdout, /EXAMPLES/, cmd.join(' '))
  }
})

test('sizes: parse and print in powers of 1024', () => {
  assert.is(parseSize('512'), 512)
  assert.is(parseSize('64K'), 64 * 1024)
  assert.is(parseSize('4MiB'), 4 << 20)
  assert.is(parseSize('1G'), 1 << 30)
  assert.throws(() => parseSize('12 parsecs'))
  assert.is(formatBytes(1536), '1.5 KiB')
})

test('the demo\'s second month: the channel moved, release run made a delta and a changelog naming both k3s versions', async () => {
  const {versions, delta, full, changes} = ctx.release
  assert.is(versions.length, 2)
  assert.ok(delta.size < full)
  const k3s = changes.artifacts.find((a) => a.name === 'k3s/k3s-amd64')!
  assert.equal([k3s.old?.version, k3s.new?.version], ['v1.30.4+k3s1', 'v1.30.5+k3s1'])
  // the rebuilt image: same ref, another digest, both sizes
  const image = changes.artifacts.find((a) => a.kind === 'image' && a.change === 'changed')!
  assert.is(image.old?.ref, 'demo.example.com/site/api:1.0')
  assert.is(image.new?.ref, image.old?.ref)
  assert.ok(image.old!.digest !== image.new!.digest && image.old!.size > 0 && image.new!.size > 0)
  assert.equal(changes.deltas, [{from: versions[0], path: basename(delta.path), size: delta.size}])
  const listed = await ferry(['release', 'list', ctx.release.dir, '--json'])
  assert.equal(listed.json?.result.releases.map((r: {version: string}) => r.version), versions)
})

test.run()
