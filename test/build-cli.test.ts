// `ferry bundle build` end to end through the binary, against a real loopback upstream and real gpg:
// every failure exits with its code and message and leaves no bundle in the output folder.
import {execFileSync, spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer, type Intercept} from '../src/demo/file-server.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry, REPO} from './helpers/cli.js'
import {makeGnupgHome, type GpgHome} from './helpers/gpg.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const ctx = {} as {dir: string; up: string; server: FileServer; gpg: GpgHome; fpr: string; otherFpr: string; key: string; pub: string; intercept?: Intercept; n: number}

async function put(path: string, data: Buffer | string) {
  await mkdir(dirname(path), {recursive: true})
  await writeFile(path, data)
}

/** A manifest against the loopback upstream; `edit` rewrites its text for the malformed cases. */
async function manifest(opts: {fileSha?: string; edit?: (t: string) => string} = {}): Promise<string> {
  const u = ctx.server.url
  const file = await readFile(join(ctx.up, 'files', 'tool.bin'))
  let text = `apiVersion: ferry/v1
kind: Bundle
metadata:
  name: cli-site
  version: 3.1.0
spec:
  vm:
    - name: azurelinux
      url: ${u}/azl/disk.vhdx
      checksums: ${u}/azl/SHA256SUMS
      signature: {url: ${u}/azl/SHA256SUMS.asc, key: upstream.asc}
  k3s: {version: v1.30.4+k3s1, airgapImages: false, base: ${u}/k3s}
  files:
    - url: ${u}/files/tool.bin
      sha256: ${opts.fileSha ?? sha(file)}
`
  if (opts.edit) text = opts.edit(text)
  const path = join(ctx.dir, `m${ctx.n++}`, 'site.yaml')
  await put(path, text)
  await writeFile(join(dirname(path), 'upstream.asc'), await ctx.gpg.exportPublic(ctx.fpr, {armor: true}))
  return path
}

async function signSums(fpr: string) {
  const sig = await ctx.gpg.signDetached(fpr, join(ctx.up, 'azl', 'SHA256SUMS'), {armor: true})
  await writeFile(join(ctx.up, 'azl', 'SHA256SUMS.asc'), await readFile(sig))
}

async function build(path: string, extra: string[] = []) {
  const out = join(dirname(path), 'out')
  const r = await ferry(['bundle', 'build', path, '--key', ctx.key, '--out', out, '--store', join(dirname(path), 'store'), '--json', ...extra], {env: {GNUPGHOME: ctx.gpg.home}})
  const left = existsSync(out) ? (await readdir(out)).filter((f) => !f.endsWith('.lock')) : []
  return {...r, out, left}
}

async function fails(path: string, status: number, code: RegExp, message: RegExp) {
  const r = await build(path)
  assert.is(r.code, status, r.stdout + r.stderr)
  assert.is(r.json?.status, status)
  assert.match(r.json?.error?.code ?? '', code)
  assert.match(r.json?.error?.message ?? '', message)
  assert.equal(r.left, [], 'the output folder holds no bundle, finished or partial')
}

const test = suite('bundle build (CLI)')

test.before(async () => {
  ctx.n = 0
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-build-'))
  ctx.up = join(ctx.dir, 'upstream')
  execFileSync('qemu-img', ['create', '-q', '-f', 'vhdx', join(ctx.dir, 'disk.vhdx'), '32M'])
  const vhdx = await readFile(join(ctx.dir, 'disk.vhdx'))
  await put(join(ctx.up, 'azl', 'disk.vhdx'), vhdx)
  await put(join(ctx.up, 'azl', 'SHA256SUMS'), `${sha(vhdx)} *disk.vhdx\r\n`)
  const k3s = randomBytes(3 << 20)
  await put(join(ctx.up, 'k3s', 'v1.30.4+k3s1', 'k3s'), k3s)
  await put(join(ctx.up, 'k3s', 'v1.30.4+k3s1', 'sha256sum-amd64.txt'), `${sha(k3s)}  k3s\n`)
  await put(join(ctx.up, 'files', 'tool.bin'), randomBytes(2 << 20))
  ctx.gpg = await makeGnupgHome()
  ctx.fpr = await ctx.gpg.generateKey({name: 'Upstream'})
  ctx.otherFpr = await ctx.gpg.generateKey({name: 'Stranger'})
  await signSums(ctx.fpr)
  const pair = await writeKeyPair(join(ctx.dir, 'keys'), 'release', await generateKeyPair({name: 'Release', date: new Date(Date.now() - 3600_000)}))
  ctx.key = pair.private
  ctx.pub = pair.public
  ctx.server = await startFileServer({root: ctx.up, intercept: (req, res, c) => ctx.intercept?.(req, res, c) ?? false})
})

test.after(async () => {
  await ctx.server?.close()
  await ctx.gpg?.cleanup()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('builds from a manifest, signing through gpg (--gpg-key); gpg verifies it', async () => {
  const fpr = await ctx.gpg.generateKey({name: 'Release via gpg'})
  const path = await manifest()
  const out = join(dirname(path), 'out')
  const r = await ferry(['bundle', 'build', path, '--gpg-key', fpr, '--out', out, '--store', join(dirname(path), 'store'), '--json'], {env: {GNUPGHOME: ctx.gpg.home}})
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.ok(r.json?.result.path.endsWith('cli-site-3.1.0.ferry.tar'))
  assert.is(r.json?.result.sha256, sha(await readFile(r.json?.result.path)))
  assert.is(r.json?.result.size, (await readFile(r.json?.result.path)).length)
  execFileSync('tar', ['-xf', r.json?.result.path, '-C', out, 'bundle.json', 'bundle.json.asc'])
  const v = await ctx.gpg.verify(join(out, 'bundle.json.asc'), join(out, 'bundle.json'))
  assert.ok(v.ok && v.valid.includes(fpr), v.output)
})

test('a rebuild of the same version with other content into the same --out is refused (exit 2, both digests); the same content is fine', async () => {
  const path = await manifest()
  const first = await build(path)
  assert.is(first.code, 0, first.stdout + first.stderr)
  // Built again from the manifest: resolved anew (created differs), same content, so it may replace it.
  const again = await build(path)
  assert.is(again.code, 0, again.stdout + again.stderr)
  const bundle = await readFile(first.json!.result.path)
  const text = await readFile(path, 'utf8')
  await writeFile(path, text + '  health:\n    - {name: nodes-ready, run: "true"}\n')
  const changed = await build(path)
  assert.is(changed.code, 2, changed.stdout + changed.stderr)
  assert.is(changed.json!.error!.code, 'VERSION_EXISTS')
  const bundleJsonDigest = (b: Buffer) => 'sha256:' + sha(b.subarray(512, 512 + parseInt(b.subarray(124, 136).toString(), 8)))
  assert.match(changed.json!.error!.message, new RegExp(`cli-site 3\\.1\\.0 with other content \\(bundle\\.json ${bundleJsonDigest(bundle)}; this build's is sha256:[0-9a-f]{64}\\)`))
  assert.ok((await readFile(first.json!.result.path)).equals(bundle), 'the bundle already there is untouched')
})

test('connection dropped mid-body: retried with Range, only the rest fetched', async () => {
  const path = await manifest()
  const before = ctx.server.requests.length
  let cut = false
  ctx.intercept = async (req, _res, c) => {
    if (c.path !== '/files/tool.bin' || cut || req.method !== 'GET' || req.headers.range) return false
    cut = true
    await c.serve({cutAfter: 1 << 20})
    return true
  }
  const r = await build(path)
  ctx.intercept = undefined
  assert.is(r.code, 0, r.stdout + r.stderr)
  const ranged = ctx.server.requests.slice(before).filter((q) => q.path === '/files/tool.bin' && q.range)
  assert.ok(ranged.some((q) => q.range === `bytes=${1 << 20}-`), JSON.stringify(ranged))
})

test('checksum mismatch → exit 3, no bundle', async () => {
  await fails(await manifest({fileSha: 'ab'.repeat(32)}), 3, /DIGEST_MISMATCH/, /tool\.bin/)
})

test('truncated upstream file (shorter than its lock says) → exit 3, no bundle', async () => {
  const path = await manifest()
  const lock = join(dirname(path), 'site.lock.json')
  const l = await ferry(['manifest', 'lock', path, '--out', lock, '--json'])
  assert.is(l.code, 0, l.stdout + l.stderr)
  const whole = await readFile(join(ctx.up, 'files', 'tool.bin'))
  await writeFile(join(ctx.up, 'files', 'tool.bin'), whole.subarray(0, whole.length - 4096))
  try {
    await fails(lock, 3, /MISMATCH|TRUNCATED/, /tool\.bin/)
  } finally {
    await writeFile(join(ctx.up, 'files', 'tool.bin'), whole)
  }
})

test('connection cut on every attempt → exit 5, no bundle', async () => {
  ctx.intercept = async (req, _res, c) => {
    if (c.path !== '/files/tool.bin' || req.method !== 'GET') return false
    await c.serve({cutAfter: 0, cutHow: 'reset'})
    return true
  }
  try {
    await fails(await manifest(), 5, /./, /tool\.bin/)
  } finally {
    ctx.intercept = undefined
  }
})

test('404 → exit 5 naming the URL, no bundle', async () => {
  await fails(await manifest({edit: (t) => t.replace('/files/tool.bin', '/files/gone.bin')}), 5, /HTTP_404/, /gone\.bin/)
})

test('upstream unreachable → exit 5, no bundle', async () => {
  await fails(await manifest({edit: (t) => t.replaceAll(ctx.server.url, 'http://127.0.0.1:9')}), 5, /UNREACHABLE/, /127\.0\.0\.1:9/)
})

test('checksum file signed by an unknown key → exit 4, no bundle', async () => {
  await signSums(ctx.otherFpr)
  try {
    await fails(await manifest(), 4, /SIGNATURE/, /[0-9A-F]{16}/)
  } finally {
    await signSums(ctx.fpr)
  }
})

test('tampered checksum file → exit 4, no bundle', async () => {
  const sums = join(ctx.up, 'azl', 'SHA256SUMS')
  const good = await readFile(sums)
  await writeFile(sums, Buffer.concat([good, Buffer.from(`${'0'.repeat(64)} *evil.vhdx\r\n`)]))
  try {
    await fails(await manifest(), 4, /SIGNATURE_BAD/, /SHA256SUMS/)
  } finally {
    await writeFile(sums, good)
  }
})

test('malformed YAML → exit 2 with the line number, no bundle', async () => {
  await fails(await manifest({edit: (t) => t.replace('  k3s: {version', '\tk3s: {version')}), 2, /MANIFEST_YAML/, /site\.yaml:12: Tabs/)
})

test('unknown field → exit 2 naming field and line, no bundle', async () => {
  await fails(await manifest({edit: (t) => t.replace('  name: cli-site', '  name: cli-site\n  colour: blue')}), 2, /MANIFEST_INVALID/, /site\.yaml:5: metadata\.colour: unknown field/)
})

test('bad semver → exit 2 naming the field, no bundle', async () => {
  await fails(await manifest({edit: (t) => t.replace('version: 3.1.0', 'version: three')}), 2, /MANIFEST_INVALID/, /metadata\.version/)
})

test('a private key file that does not exist → exit 2 before any download', async () => {
  const path = await manifest()
  const r = await ferry(['bundle', 'build', path, '--key', join(ctx.dir, 'nope.key.asc'), '--out', join(dirname(path), 'out'), '--json'])
  assert.is(r.code, 2, r.stdout + r.stderr)
  assert.ok(!existsSync(join(dirname(path), 'out')))
})

test('kill -9 at random moments never leaves a bundle that looks complete; the next build cleans up and succeeds', async () => {
  const path = await manifest()
  const out = join(dirname(path), 'out')
  const store = join(dirname(path), 'store')
  const target = join(out, 'cli-site-3.1.0.ferry.tar')
  for (const delay of [150, 400, 700, 1000, 1300]) {
    await rm(store, {recursive: true, force: true})
    await rm(target, {force: true})
    const child = spawn(process.execPath, [join(REPO, 'bin', 'run.js'), 'bundle', 'build', path, '--key', ctx.key, '--out', out, '--store', store, '-q'], {stdio: 'ignore'})
    const closed = new Promise((r) => child.once('close', r))
    await new Promise((r) => setTimeout(r, delay))
    child.kill('SIGKILL')
    await closed
    if (existsSync(target)) {
      // It finished before the kill: then it is whole.
      const v = await ferry(['bundle', 'verify', target, '--key', ctx.pub])
      assert.is(v.code, 0, v.stderr)
    }
  }
  // (on a loaded machine every kill may come before the build made its output folder)
  await mkdir(out, {recursive: true})
  await writeFile(join(out, '.cli-site-3.1.0.ferry.tar.0badc0de.partial'), 'left by a killed build')
  const r = await build(path)
  assert.is(r.code, 0, r.stdout + r.stderr)
  const left = (await readdir(out)).filter((f) => f.endsWith('.partial') || f.endsWith('.lock'))
  assert.equal(left, [], 'no temp file or lock left behind')
  const v = await ferry(['bundle', 'verify', target, '--key', ctx.pub])
  assert.is(v.code, 0, v.stderr)
})

test.run()
