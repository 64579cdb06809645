// The device tarball (npm run pack:device): extracted far from this checkout, with no node_modules
// above it, and run through the link the systemd units use, it works on its own: with --with-node
// even with no node on PATH. It carries the units, and no development tools.
import {execFile, spawn} from 'node:child_process'
import {mkdir, mkdtemp, readdir, rm, symlink} from 'node:fs/promises'
import {existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO} from './helpers/cli.js'

const exec = promisify(execFile)
const test = suite('pack-device')
let work: string

/** Runs a program as a technician would, with exactly this environment (no inherited PATH). */
function run(bin: string, args: string[], env: Record<string, string>): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {cwd: work, env: {NO_COLOR: '1', HOME: work, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** Packs into `out` with the repository's script, as npm run pack:device does; returns the tarball. */
async function pack(out: string, ...args: string[]): Promise<string> {
  await exec('bash', [join(REPO, 'scripts', 'pack-device.sh'), '--out', out, '--no-build', ...args], {cwd: REPO, maxBuffer: 1 << 20})
  const files = (await readdir(out)).filter((f) => f.endsWith('.tar.gz'))
  assert.is(files.length, 1, `one tarball in ${out}: ${files}`)
  return join(out, files[0])
}

/** Extracts like the README (into opt/, linked from usr/local/bin/ferry) under `root`; returns the link. */
async function install(tarball: string, root: string): Promise<string> {
  await mkdir(join(root, 'opt'), {recursive: true})
  await exec('tar', ['-xzf', tarball, '-C', join(root, 'opt')])
  const [folder] = await readdir(join(root, 'opt'))
  await mkdir(join(root, 'usr', 'local', 'bin'), {recursive: true})
  await symlink(join(root, 'opt', folder), join(root, 'opt', 'ferry'))
  const link = join(root, 'usr', 'local', 'bin', 'ferry')
  await symlink(join(root, 'opt', 'ferry', 'ferry'), link)
  return link
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ferry-pack-'))
  // a PATH with the shell tools the launcher uses and no node
  await mkdir(join(work, 'tools'))
  for (const tool of ['readlink', 'dirname']) await symlink((await exec('sh', ['-c', `command -v ${tool}`])).stdout.trim(), join(work, 'tools', tool))
})
test.after(async () => {
  await rm(work, {recursive: true, force: true})
})

test('with --with-node: runs with no node on PATH and no repository node_modules, version and device status', async () => {
  const tarball = await pack(join(work, 'out-node'), '--with-node')
  assert.match(tarball, /ferry-\d+\.\d+\.\d+-linux-x64\.tar\.gz$/)
  const {stdout: listing} = await exec('tar', ['-tzf', tarball], {maxBuffer: 64 << 20})
  const names = listing.split('\n')
  for (const want of ['ferry', 'bin/run.js', 'dist/commands/version.js', 'oclif.manifest.json', 'node/bin/node', 'packaging/ferry-recover.service', 'packaging/ferry-release.service', 'packaging/ferry-release.timer', 'node_modules/@oclif/core/package.json', 'node_modules/openpgp/package.json'])
    assert.ok(names.some((n) => n.replace(/^[^/]+\//, '') === want), `the tarball holds ${want}`)
  // production dependencies only
  for (const dev of ['typescript', 'tsx', 'uvu', '@types/node']) assert.not.ok(names.some((n) => n.includes(`/node_modules/${dev}/`)), `no ${dev}`)

  const root = join(work, 'device')
  const ferry = await install(tarball, root)
  const env = {PATH: join(work, 'tools')}
  assert.not.ok(existsSync(join(root, 'opt', 'node_modules')))

  const v = await run(ferry, ['version', '--json'], env)
  assert.is(v.code, 0, v.stderr)
  const version = JSON.parse(v.stdout).result
  assert.is(version.version, (await import(join(REPO, 'package.json'), {with: {type: 'json'}})).default.version)
  assert.is(version.node, process.versions.node)

  // a fresh device root is refused until provisioned, then status reads it (all from the tarball's code)
  const before = await run(ferry, ['device', 'status', '--root', root], env)
  assert.is(before.code, 2, before.stderr)
  const keys = await run(ferry, ['keys', 'generate', '--name', 'site', '--out', join(work, 'keys')], env)
  assert.is(keys.code, 0, keys.stderr)
  const add = await run(ferry, ['device', 'trust', 'add', join(work, 'keys', 'site.pub.asc'), '--root', root], env)
  assert.is(add.code, 0, add.stderr)
  const status = await run(ferry, ['device', 'status', '--root', root, '--json'], env)
  assert.is(status.code, 0, status.stderr)
  assert.is(JSON.parse(status.stdout).result.state, 'idle')
  const plain = await run(ferry, ['device', 'status', '--root', root], env)
  assert.is(plain.code, 0, plain.stderr)
  assert.match(plain.stdout, /idle/)
})

test('without Node: the launcher runs the node on PATH, and says what is missing when there is none', async () => {
  const tarball = await pack(join(work, 'out-plain'))
  assert.match(tarball, /ferry-\d+\.\d+\.\d+-device\.tar\.gz$/)
  const {stdout: listing} = await exec('tar', ['-tzf', tarball], {maxBuffer: 64 << 20})
  assert.not.ok(listing.includes('/node/bin/node'))
  const ferry = await install(tarball, join(work, 'device2'))
  const nodeDir = join(work, 'with-node')
  await mkdir(nodeDir)
  await symlink(process.execPath, join(nodeDir, 'node'))
  const v = await run(ferry, ['version'], {PATH: `${join(work, 'tools')}:${nodeDir}`})
  assert.is(v.code, 0, v.stderr)
  assert.match(v.stdout, /^ferry\/\d+\.\d+\.\d+ /)
  const none = await run(ferry, ['version'], {PATH: join(work, 'tools')})
  assert.is(none.code, 1)
  assert.match(none.stderr, /Node\.js 20 or later is needed/)
})

test.run()
