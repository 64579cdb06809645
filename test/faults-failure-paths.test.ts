// Failure paths under injected faults, through the ferry binary: a device import that fails on the device's
// own disk leaves the committed release and the reason (not `verifying` or `staged`), a lock file that cannot
// be written is not left behind, and `bundle build` whose archive cannot be opened is exit 6 with its JSON
// envelope and leaves neither its lock nor a temp file; the next clean run succeeds each time.
import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer} from '../src/demo/file-server.js'
import {hostPlatform} from '../src/device/platform.js'
import type {LockFile} from '../src/manifest/lock-format.js'
import {ferry} from './helpers/cli.js'
import {makeBundle, makeDevice, makeKey, type MadeBundle, type TestDevice, type TestKey} from './helpers/device.js'
import {ferryFailingCall, ferryFailingOpen} from './helpers/faults.js'

const test = suite('faults: failure paths')
const ctx = {} as {dir: string; key: TestKey; v1: MadeBundle; v2: MadeBundle; n: number}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-failure-paths-'))
  ctx.key = await makeKey(ctx.dir, 'release')
  ctx.v1 = await makeBundle({dir: ctx.dir, version: '1.0.0', signers: [ctx.key]})
  ctx.v2 = await makeBundle({dir: ctx.dir, version: '2.0.0', signers: [ctx.key]})
  ctx.n = 0
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

/** A device running 1.0.0 (committed). */
async function committedDevice(): Promise<TestDevice> {
  const dev = await makeDevice(join(ctx.dir, `dev-${ctx.n++}`), {trust: [ctx.key]})
  assert.is((await ferry(['device', 'import', ctx.v1.path, '--root', dev.root])).code, 0)
  assert.is((await ferry(['device', 'apply', '--root', dev.root])).code, 0)
  return dev
}

const status = async (dev: TestDevice) => (await ferry(['device', 'status', '--root', dev.root, '--json'])).json!.result

async function assertFailedImport(dev: TestDevice, r: {code: number | null; json?: {error?: {code: string; message: string}}}, reason: RegExp) {
  assert.is(r.code, 6, JSON.stringify(r.json))
  assert.ok(r.json?.error, 'a JSON envelope')
  const s = await status(dev)
  assert.is(s.state, 'committed')
  assert.is(s.current.version, '1.0.0')
  assert.is(s.staged, null)
  assert.is(s.interrupted, null)
  assert.match(s.lastError ?? '', reason)
  assert.not.ok(existsSync(dev.paths.lock), 'no lock left')
  assert.equal(await readdir(dev.paths.tmp), [], 'no temp file left')
  // the next clean import stages 2.0.0 and clears the error
  assert.is((await ferry(['device', 'import', ctx.v2.path, '--root', dev.root])).code, 0)
  const after = await status(dev)
  assert.is(after.staged.version, '2.0.0')
  assert.is(after.lastError, null)
}

test('an import whose journal cannot be flushed (EIO at every fsync of its folder): status shows the committed release and the error', async () => {
  const dev = await committedDevice()
  const r = await ferryFailingCall(['device', 'import', ctx.v2.path, '--root', dev.root, '--json'], {syscall: 'fsync', path: dev.paths.base, error: 'EIO'})
  await assertFailedImport(dev, r, /i\/o error/i)
})

test('an import failing at its last write (the device clock, ENOSPC): not left staged, the error is shown', async () => {
  const dev = await committedDevice()
  // the temp file of trust/clock.json, the highest time seen, written once the slot is filled
  const r = await ferryFailingOpen(['device', 'import', ctx.v2.path, '--root', dev.root, '--json'], {prefix: join(dev.paths.trust, '.clock.json.'), nth: 1, errno: 28})
  await assertFailedImport(dev, r, /no space|ENOSPC/i)
})

test('a refused bundle leaves state.json as it was even when putting it back hits a full disk once', async () => {
  const dev = await committedDevice()
  const stranger = await makeKey(ctx.dir, `stranger-${ctx.n}`)
  const foreign = await makeBundle({dir: ctx.dir, version: '3.0.0', signers: [stranger]})
  const before = await readFile(dev.paths.state, 'utf8')
  // opens of a journal temp file: 1 `verifying`, 2 putting the old journal back (fails), 3 the same, unflushed
  const r = await ferryFailingOpen(['device', 'import', foreign.path, '--root', dev.root, '--json'], {prefix: join(dev.paths.base, '.state.json.'), nth: 2, errno: 28})
  assert.is(r.code, 4, r.stdout + r.stderr)
  assert.is(await readFile(dev.paths.state, 'utf8'), before)
})

test('a lock file that cannot be written (ENOSPC) is not left behind', async () => {
  const dev = await committedDevice()
  for (const verb of [['import', ctx.v2.path], ['apply'], ['recover']]) {
    const r = await ferryFailingCall(['device', ...verb, '--root', dev.root, '--json'], {syscall: 'write', path: dev.paths.lock, error: 'ENOSPC'})
    assert.is(r.code, 6, `${verb[0]}: ${r.stdout}${r.stderr}`)
    assert.ok(r.json?.error)
    assert.not.ok(existsSync(dev.paths.lock), `${verb[0]} left its lock`)
  }
  assert.is((await status(dev)).state, 'committed')
})

test('a lock left by a power cut is broken at the next boot even when its pid belongs to a live process again', async () => {
  const dev = await committedDevice()
  // pid 1 always lives; the boot id is another boot's
  await writeFile(dev.paths.lock, '1 00000000-0000-4000-8000-000000000000\n')
  assert.is((await status(dev)).running, null)
  const r = await ferry(['device', 'recover', '--root', dev.root, '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.not.ok(existsSync(dev.paths.lock))
  // the same pid in this boot is a live owner: busy
  await writeFile(dev.paths.lock, `1 ${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n`)
  assert.is((await ferry(['device', 'recover', '--root', dev.root, '--json'])).code, 8)
  await rm(dev.paths.lock)
})

test('bundle build whose archive cannot be opened (EACCES) is exit 6 with its envelope, no lock, no temp file; the rerun builds', async () => {
  // a file fetched over HTTP straight into its place in the archive (it waits for the archive to be opened)
  const bytes = Buffer.alloc(512 * 1024, 7)
  const up = join(ctx.dir, 'upstream')
  await mkdir(up, {recursive: true})
  await writeFile(join(up, 'tool.bin'), bytes)
  const server = await startFileServer({root: up})
  try {
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    const now = new Date(Date.now() - 60_000)
    const lock: LockFile = {
      schema: 'ferry.lock/v1',
      name: 'faulty-site',
      version: '1.0.0',
      resolved: now.toISOString(),
      expires: new Date(now.getTime() + 86_400_000).toISOString(),
      platforms: [hostPlatform()],
      health: [],
      artifacts: [{name: 'files/tool.bin', kind: 'file', url: `${server.url}/tool.bin`, sha256, size: bytes.length, mediaType: 'application/octet-stream', dest: 'files/tool.bin', upstream: {verifiedBy: 'sha256'}}],
    }
    const lockFile = join(ctx.dir, 'faulty.lock.json')
    await writeFile(lockFile, JSON.stringify(lock, null, 2) + '\n')
    const out = join(ctx.dir, 'faulty-out')
    const args = ['bundle', 'build', lockFile, '--key', ctx.key.priv, '--out', out, '--store', join(ctx.dir, 'faulty-store'), '--json']
    // opens for write in the output folder: 1 the build lock, 2 the hard-link probe, 3 the archive
    const r = await ferryFailingOpen(args, {prefix: out, nth: 3, errno: 13})
    assert.is(r.code, 6, `${r.stdout}${r.stderr}`)
    assert.is(r.json?.status, 6)
    assert.match(r.json!.error!.message, /EACCES|permission/i)
    assert.equal(await readdir(out), [], 'nothing left in the output folder (lock, temp file)')
    const ok = await ferry(args)
    assert.is(ok.code, 0, ok.stdout + ok.stderr)
    assert.equal(await readdir(out), ['faulty-site-1.0.0.ferry.tar'])
  } finally {
    await server.close()
  }
})

test.run()
