// Ctrl-C and SIGTERM at real moments: the built `ferry` binary is started, the test waits until it is
// in the middle of its work (bytes served by the loopback upstream, a part on a FAT stick, a journal
// state), sends the signal, then checks the one line, the exit code, that no lock or half-made file
// is left, and that running the command again resumes and succeeds.
import {spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, stat, writeFile} from 'node:fs/promises'
import type {ServerResponse} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry, REPO, type CliResult} from './helpers/cli.js'
import {makeFatStick, type FatStick} from './helpers/fat.js'

const BIN = join(REPO, 'bin', 'run.js')
const BIG = 16 << 20
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const ctx = {} as {dir: string; up: string; server: FileServer; key: string; pub: string; bigSha: string; throttle: boolean; served: number; n: number; stick?: FatStick}

/** Starts the binary as a user would; `done` settles when it exits. */
function start(args: string[]): {pid: number; kill: (s: NodeJS.Signals) => void; done: Promise<CliResult>} {
  const child = spawn(BIN, args, {cwd: REPO, env: {...process.env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code) => {
      let json
      try {
        json = JSON.parse(stdout)
      } catch {
        json = undefined
      }
      resolve({code, stdout, stderr, json})
    }),
  )
  return {pid: child.pid!, kill: (s) => child.kill(s), done}
}

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** Serves /big.bin slowly (64 KiB every 10 ms) to a request without a Range, counting what left. */
async function trickle(res: ServerResponse, body: Buffer): Promise<void> {
  res.writeHead(200, {'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'Accept-Ranges': 'bytes'})
  for (let at = 0; at < body.length && !res.destroyed; at += 64 << 10) {
    const chunk = body.subarray(at, at + (64 << 10))
    await new Promise<void>((resolve) => res.write(chunk, () => resolve()))
    ctx.served += chunk.length
    await sleep(10)
  }
  res.end()
}

/** A manifest of one 16 MiB file from the loopback upstream, and its lock. */
async function site(opts: {version?: string; health?: string} = {}): Promise<{folder: string; lock: string}> {
  const folder = join(ctx.dir, `s${ctx.n++}`)
  await mkdir(folder, {recursive: true})
  const health = opts.health ? `  health:\n    - {name: ready, run: ${JSON.stringify(opts.health)}, timeout: 120s}\n` : ''
  await writeFile(
    join(folder, 'site.yaml'),
    `apiVersion: ferry/v1
kind: Bundle
metadata: {name: sig-site, version: ${opts.version ?? '1.0.0'}}
spec:
  platforms: [linux/amd64]
  files:
    - {url: ${ctx.server.url}/big.bin, sha256: ${ctx.bigSha}, dest: files/big.bin}
${health}`,
  )
  const locked = await ferry(['manifest', 'lock', join(folder, 'site.yaml'), '--json'])
  assert.is(locked.code, 0, locked.stdout + locked.stderr)
  return {folder, lock: join(folder, 'site.lock.json')}
}

/** The lines a run printed on stderr (progress is off with -q). */
const lines = (r: CliResult) => r.stderr.split('\n').filter((l) => l.trim())

const filesUnder = async (dir: string): Promise<string[]> => (existsSync(dir) ? readdir(dir, {recursive: true}) : [])

const test = suite('Ctrl-C and SIGTERM')

test.before(async () => {
  ctx.n = 0
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-signals-'))
  ctx.up = join(ctx.dir, 'upstream')
  await mkdir(ctx.up)
  const big = randomBytes(BIG)
  await writeFile(join(ctx.up, 'big.bin'), big)
  ctx.bigSha = sha(big)
  ctx.throttle = false
  ctx.server = await startFileServer({
    root: ctx.up,
    intercept: async (req, res, c) => {
      if (!ctx.throttle || c.path !== '/big.bin' || req.method !== 'GET' || req.headers.range) return false
      await trickle(res, big)
      return true
    },
  })
  const pair = await generateKeyPair({name: 'Signals', date: new Date('2020-01-01T00:00:00Z')})
  const files = await writeKeyPair(join(ctx.dir, 'keys'), 'release', pair)
  ctx.key = files.private
  ctx.pub = files.public
})

test.after(async () => {
  await ctx.stick?.unmount().catch(() => undefined)
  await ctx.server.close()
})

/** Starts a throttled build, waits until 1 MiB has been served, sends `signal`. */
async function interruptedBuild(lock: string, folder: string, signal: NodeJS.Signals, extra: string[] = []): Promise<CliResult> {
  ctx.throttle = true
  ctx.served = 0
  const run = start(['bundle', 'build', lock, '--key', ctx.key, '--out', join(folder, 'out'), '--store', join(folder, 'store'), '-q', ...extra])
  await waitUntil(() => ctx.served >= 1 << 20, 'the upstream to serve 1 MiB')
  run.kill(signal)
  const r = await run.done
  ctx.throttle = false
  return r
}

test('bundle build: Ctrl-C keeps the download in the store, one line, exit 130; the rerun resumes it with a Range request', async () => {
  const {folder, lock} = await site()
  const r = await interruptedBuild(lock, folder, 'SIGINT')
  assert.is(r.code, 130, r.stdout + r.stderr)
  assert.equal(lines(r).length, 1, r.stderr)
  assert.match(r.stderr, /^ferry: interrupted \(SIGINT\): no bundle was written; what was downloaded is kept in the store .*partial.*run the same command again/)
  assert.equal(await filesUnder(join(folder, 'out')), [], 'no bundle, no temp file and no lock in the output folder')
  const parked = join(folder, 'store', 'partial', ctx.bigSha)
  const kept = (await stat(parked)).size
  assert.ok(kept > 0 && kept < BIG, `the partial download is parked (${kept} bytes)`)

  const before = ctx.server.requests.length
  const again = await ferry(['bundle', 'build', lock, '--key', ctx.key, '--out', join(folder, 'out'), '--store', join(folder, 'store'), '--json'])
  assert.is(again.code, 0, again.stdout + again.stderr)
  const gets = ctx.server.requests.slice(before).filter((q) => q.path === '/big.bin' && q.method === 'GET')
  assert.equal(gets.map((q) => q.range), [`bytes=${kept}-`], 'the rerun asked only for the bytes it lacked')
  const verified = await ferry(['bundle', 'verify', again.json!.result.path, '--key', ctx.pub, '--json'])
  assert.is(verified.code, 0, verified.stdout + verified.stderr)
})

test('bundle build: SIGTERM under --json is the INTERRUPTED envelope, exit 143, lock removed', async () => {
  const {folder, lock} = await site()
  const r = await interruptedBuild(lock, folder, 'SIGTERM', ['--json'])
  assert.is(r.code, 143, r.stdout + r.stderr)
  assert.is(r.json?.status, 143)
  assert.is(r.json?.error?.code, 'INTERRUPTED')
  assert.match(r.json?.error?.message ?? '', /interrupted \(SIGTERM\).*run the same command again/)
  assert.equal(await filesUnder(join(folder, 'out')), [])
  assert.ok((await stat(join(folder, 'store', 'partial', ctx.bigSha))).size > 0)
})

test('release run: Ctrl-C records no release and leaves no lock; the rerun resumes and makes the release', async () => {
  const {folder} = await site({version: '2.0.0'})
  const out = join(folder, 'releases')
  ctx.throttle = true
  ctx.served = 0
  const args = ['release', 'run', join(folder, 'site.yaml'), '--key', ctx.key, '--out', out, '--store', join(folder, 'store'), '-q']
  const run = start(args)
  await waitUntil(() => ctx.served >= 1 << 20, 'the upstream to serve 1 MiB')
  run.kill('SIGINT')
  const r = await run.done
  ctx.throttle = false
  assert.is(r.code, 130, r.stdout + r.stderr)
  assert.equal(lines(r).length, 1, r.stderr)
  assert.match(r.stderr, /interrupted \(SIGINT\): no release was recorded.*run the same command again/)
  const left = await filesUnder(out)
  assert.not.ok(left.some((f) => f === 'releases.json' || f.endsWith('.lock') || f.endsWith('.ferry.tar')), left.join(' '))
  const before = ctx.server.requests.length
  const again = await ferry([...args.slice(0, -1), '--json'])
  assert.is(again.code, 0, again.stdout + again.stderr)
  assert.is(again.json?.result.changed, true)
  const gets = ctx.server.requests.slice(before).filter((q) => q.path === '/big.bin' && q.method === 'GET')
  assert.ok(gets.length === 1 && /^bytes=[1-9]\d*-$/.test(gets[0].range ?? ''), JSON.stringify(gets))
})

/** A built bundle of `version` (from the store the first test filled, so nothing slow is fetched). */
async function bundle(version: string, health?: string): Promise<string> {
  const {folder, lock} = await site({version, health})
  const r = await ferry(['bundle', 'build', lock, '--key', ctx.key, '--out', join(folder, 'out'), '--store', join(ctx.dir, 'shared-store'), '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  return r.json!.result.path
}

test('usb write: Ctrl-C on a FAT32 stick keeps the written parts and no complete-looking bundle; the rerun writes the rest', async () => {
  const path = await bundle('3.0.0')
  ctx.stick = await makeFatStick(join(ctx.dir, 'usb'), 64)
  const args = ['usb', 'write', path, ctx.stick.dir, '--part-size', '1MiB', '-q']
  const run = start(args)
  await waitUntil(async () => (await readdir(ctx.stick!.dir)).some((f) => f.endsWith('.part-003')), 'a fourth part on the stick')
  run.kill('SIGINT')
  const r = await run.done
  assert.is(r.code, 130, r.stdout + r.stderr)
  assert.equal(lines(r).length, 1, r.stderr)
  assert.match(r.stderr, /interrupted \(SIGINT\): the stick holds no complete copy.*parts already written are kept.*ferry usb write/)
  const left = await readdir(ctx.stick.dir)
  assert.not.ok(left.some((f) => f.endsWith('.parts.json') || f.endsWith('.partial') || f.endsWith('.tmp')), left.join(' '))
  const again = await ferry([...args.slice(0, -1), '--json'])
  assert.is(again.code, 0, again.stdout + again.stderr)
  assert.ok(again.json!.result.kept >= 3, `parts kept: ${again.json!.result.kept}`)
})

/** A device root trusting the test key. */
async function device(): Promise<string> {
  const root = join(ctx.dir, `dev${ctx.n++}`)
  await mkdir(join(root, 'var', 'lib', 'ferry'), {recursive: true})
  const t = await ferry(['device', 'trust', 'add', ctx.pub, '--root', root, '--json'])
  assert.is(t.code, 0, t.stdout + t.stderr)
  return root
}

const journal = async (root: string) => JSON.parse(await readFile(join(root, 'var', 'lib', 'ferry', 'state.json'), 'utf8').catch(() => '{}'))

test('device import: Ctrl-C while it reads the stick stages nothing, leaves no lock; the rerun stages it', async () => {
  const root = await device()
  const stick = ctx.stick!.dir
  const run = start(['device', 'import', stick, '--root', root, '-q'])
  await waitUntil(async () => (await journal(root)).state === 'verifying', 'the import to start verifying', 30_000)
  run.kill('SIGINT')
  const r = await run.done
  assert.is(r.code, 130, r.stdout + r.stderr)
  assert.equal(lines(r).length, 1, r.stderr)
  assert.match(r.stderr, /interrupted \(SIGINT\): nothing was staged and the running release is untouched.*ferry device import/)
  assert.not.ok(existsSync(join(root, 'var', 'lib', 'ferry', 'lock')), 'the device lock is gone')
  assert.not.ok((await journal(root)).staged)
  const again = await ferry(['device', 'import', stick, '--root', root, '--json'])
  assert.is(again.code, 0, again.stdout + again.stderr)
  assert.is(again.json?.result.status, 'staged')
})

test('device apply: SIGTERM during the trial goes back to the running release, keeps the new one staged; the rerun commits it', async () => {
  const root = await device()
  const first = await bundle('4.0.0')
  for (const verb of [['import', first], ['apply']]) {
    const r = await ferry(['device', ...verb, '--root', root, '--json'])
    assert.is(r.code, 0, r.stdout + r.stderr)
  }
  const second = await bundle('4.1.0', 'test -f "$FERRY_ROOT/healthy" || sleep 100')
  const imported = await ferry(['device', 'import', second, '--root', root, '--json'])
  assert.is(imported.code, 0, imported.stdout + imported.stderr)
  const run = start(['device', 'apply', '--root', root, '-q'])
  await waitUntil(async () => (await journal(root)).state === 'trial', 'the trial to start')
  await sleep(200)
  run.kill('SIGTERM')
  const r = await run.done
  assert.is(r.code, 143, r.stdout + r.stderr)
  assert.equal(lines(r).length, 1, r.stderr)
  assert.match(r.stderr, /interrupted \(SIGTERM\): the device is back on sig-site 4\.0\.0; 4\.1\.0 is still staged: run "ferry device apply --root .*" again/)
  assert.not.ok(existsSync(join(root, 'var', 'lib', 'ferry', 'lock')), 'the device lock is gone')
  const status = await ferry(['device', 'status', '--root', root, '--json'])
  assert.is(status.json?.result.state, 'staged', status.stdout)
  assert.is(status.json?.result.current.version, '4.0.0')
  await writeFile(join(root, 'healthy'), '')
  const again = await ferry(['device', 'apply', '--root', root, '--json'])
  assert.is(again.code, 0, again.stdout + again.stderr)
  assert.is(again.json?.result.current.version, '4.1.0')
})

test.run()
