// Crash consistency, checked on syscall traces: clean runs of the device verbs (trust add, import, apply with
// K3s images and hooks, a rollback, a commit that collects blobs, recover after a kill), `keys generate`,
// `bundle build` and `usb write`, each under `strace -f`, must follow the rules of test/helpers/strace.ts: data
// fsynced before a rename, a rename's folder fsynced before anything elsewhere is published and before the
// command ends, new folders and removals (the lock's too) made durable, the journal's folder fsynced before
// the next side effect.
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {devicePaths} from '../src/device/paths.js'
import {ferry} from './helpers/cli.js'
import {makeBundle, makeKey, makeLock, type MadeBundle, type TestKey} from './helpers/device.js'
import {nodesReady, standInArtifacts, writeDeviceConfig, type K3sMode} from './helpers/stand-ins.js'
import {type CheckOptions, checkCrashRules, parseTrace, traceFerry} from './helpers/strace.js'

const test = suite('faults: crash-consistency rules on traces')
const ctx = {} as {dir: string; key: TestKey; root: string; traces: number}
const IMAGES_DIR = '/var/lib/rancher/k3s/agent/images'
const AIRGAP = {name: 'k3s/k3s-airgap-images-amd64.tar.zst', kind: 'k3s' as const, dest: 'images/k3s-airgap-images-amd64.tar.zst', content: {size: 64 * 1024, seed: 'airgap'}}

/** `airgap`: the seed of the release's airgap archive (releases with the same one share its blob) */
function release(version: string, mode: K3sMode, airgap = AIRGAP): Promise<MadeBundle> {
  return makeBundle({dir: ctx.dir, version, signers: [ctx.key], artifacts: [...standInArtifacts(version, mode), airgap], health: [nodesReady(10)]})
}

/** Runs one command under strace and returns the rule violations its trace shows (as readable lines). */
async function traced(args: string[], exit: number, rules: CheckOptions): Promise<string[]> {
  const file = join(ctx.dir, `trace-${ctx.traces++}.txt`)
  const run = await traceFerry(args, file)
  assert.is(run.code, exit, `${args.slice(0, 2).join(' ')}: exit ${run.code}\n${run.stdout}${run.stderr}`)
  const found = checkCrashRules(parseTrace(await readFile(file, 'utf8')), rules)
  return found.map((v) => `${args[0]} ${args[1]}: ${v.rule}: ${v.message}`)
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-crash-rules-'))
  ctx.key = await makeKey(ctx.dir, 'release')
  ctx.root = join(ctx.dir, 'device')
  ctx.traces = 0
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('the rules on a hand-written trace: each kind of violation is found, a correct sequence passes', () => {
  const trace = [
    // a blob written, renamed into blobs/ without its fsync, then the journal renamed before blobs/ is flushed
    '10 openat(AT_FDCWD</r>, "/r/tmp/x", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 18</r/tmp/x>',
    '10 write(18</r/tmp/x>, ""..., 5) = 5',
    '11 rename("/r/tmp/x", "/r/blobs/x" <unfinished ...>',
    '10 openat(AT_FDCWD</r>, "/r/.state.json.1.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 19</r/.state.json.1.tmp>',
    '11 <... rename resumed>) = 0',
    '10 write(19</r/.state.json.1.tmp>, ""..., 9) = 9',
    '12 fsync(19</r/.state.json.1.tmp>) = 0',
    '10 rename("/r/.state.json.1.tmp", "/r/state.json") = 0',
    // a side effect before the journal's folder was flushed, and a new folder never made durable
    '10 mkdir("/r/slots", 0777) = 0',
    '12 fsync(20</r>) = 0',
    '10 unlink("/r/lock") = 0',
  ].join('\n')
  const found = checkCrashRules(parseTrace(trace), {under: ['/r'], journal: ['/r/state.json']})
  assert.equal(
    found.map((v) => `${v.rule}: ${v.message}`),
    [
      'data-before-rename: /tmp/x renamed to /blobs/x without an fsync after its last write',
      'entry-before-publish: renamed /tmp/x to /blobs/x (in /blobs) not durable before /state.json was renamed into place',
      'journal-before-side-effect: creating /slots/ after the journal was renamed, before / was fsynced',
      'durable-before-exit: removed /lock (in /) not durable when the command ended',
    ],
  )
  const good = [
    '10 openat(AT_FDCWD</r>, "/r/tmp/x", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 18</r/tmp/x>',
    '10 write(18</r/tmp/x>, ""..., 5) = 5',
    '10 fsync(18</r/tmp/x>) = 0',
    '10 rename("/r/tmp/x", "/r/blobs/x") = 0',
    '10 fsync(21</r/blobs>) = 0',
    '10 unlink("/r/lock") = 0',
    '10 fsync(20</r>) = 0',
  ].join('\n')
  assert.equal(checkCrashRules(parseTrace(good), {under: ['/r'], journal: ['/r/state.json']}), [])
})

test('device trust add, import, apply, rollback and commit follow the rules', async () => {
  const root = ctx.root
  const paths = devicePaths(root)
  await mkdir(paths.base, {recursive: true})
  await writeDeviceConfig(root, `k3s:\n  imagesDir: ${IMAGES_DIR}\n`)
  const device: CheckOptions = {under: [paths.base, join(root, IMAGES_DIR)], journal: [paths.state]}
  const v1 = await release('1.0.0', 'healthy')
  const v2 = await release('2.0.0', 'healthy')
  const v3 = await release('3.0.0', 'unhealthy', {...AIRGAP, content: {size: 64 * 1024, seed: 'airgap-3'}})
  const v4 = await release('4.0.0', 'healthy')
  const found: string[] = []
  found.push(...(await traced(['device', 'trust', 'add', ctx.key.pub, '--root', root], 0, device)))
  for (const [bundle, applied] of [[v1, 0], [v2, 0], [v3, 7], [v4, 0]] as const) {
    found.push(...(await traced(['device', 'import', bundle.path, '--root', root, '--json'], 0, device)))
    found.push(...(await traced(['device', 'apply', '--root', root, '--json'], applied, device)))
  }
  // an apply killed right after the switch: recover rolls back to 4.0.0 (exit 7)
  const v5 = await release('5.0.0', 'healthy')
  found.push(...(await traced(['device', 'import', v5.path, '--root', root, '--json'], 0, device)))
  assert.is((await ferry(['device', 'apply', '--root', root], {env: {FERRY_TEST_KILL_AT: 'switching:link:done'}})).code, null)
  found.push(...(await traced(['device', 'recover', '--root', root, '--json'], 7, device)))
  if (process.env.FERRY_SHOW_VIOLATIONS) console.log(`${found.length} violations:\n${found.join('\n')}`)
  assert.equal(found, [])
  // 2.0.0 and 4.0.0 carry the airgap archive of 1.0.0, the rollback put it back: the folder K3s scans holds no temp file
  assert.equal((await readdir(join(root, IMAGES_DIR))).sort(), ['k3s-airgap-images-amd64.tar.zst'])
})

test('keys generate, bundle build and usb write follow the rules in their output folders', async () => {
  const lock = await makeLock({dir: ctx.dir, version: '5.0.0', signers: [ctx.key], artifacts: [...standInArtifacts('5.0.0', 'healthy'), AIRGAP]})
  const lockFile = join(ctx.dir, 'site.lock.json')
  await writeFile(lockFile, JSON.stringify(lock, null, 2) + '\n')
  const out = join(ctx.dir, 'out')
  const stick = join(ctx.dir, 'stick')
  await mkdir(stick)
  const found: string[] = []
  const keys = join(ctx.dir, 'new-keys')
  found.push(...(await traced(['keys', 'generate', '--name', 'site', '--out', keys], 0, {under: [keys]})))
  found.push(...(await traced(['bundle', 'build', lockFile, '--key', ctx.key.priv, '--out', out, '--store', join(ctx.dir, 'store'), '--json'], 0, {under: [out]})))
  const [bundle] = (await readdir(out)).filter((n) => n.endsWith('.ferry.tar'))
  found.push(...(await traced(['usb', 'write', join(out, bundle), stick, '--part-size', '64KiB', '--json'], 0, {under: [stick]})))
  if (process.env.FERRY_SHOW_VIOLATIONS) console.log(`${found.length} violations:\n${found.join('\n')}`)
  assert.equal(found, [])
})

test.run()
