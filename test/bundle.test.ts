// Bundle build, verify and inspect on real parts: a loopback HTTP upstream, a real VHDX from qemu-img,
// real gpg for signature interop, GNU tar and umoci for the archive and the OCI layout.
import {execFileSync} from 'node:child_process'
import {readdirSync, readlinkSync, realpathSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {buildBundle} from '../src/bundle/build.js'
import {openBundleInput} from '../src/bundle/input.js'
import {inspectBundle} from '../src/bundle/inspect.js'
import {verifyBundleStream} from '../src/bundle/verify.js'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import {makeDemoUpstream} from '../src/demo/upstream.js'
import {lockManifest, writeLock} from '../src/manifest/lock.js'
import type {LockFile} from '../src/manifest/lock-format.js'
import {BlobStore} from '../src/store/blob-store.js'
import {generateKeyPair, readPublicKeys, writeKeyPair} from '../src/trust/keys.js'
import {fileSigner} from '../src/trust/sign.js'
import {ferry} from './helpers/cli.js'
import {makeGnupgHome} from './helpers/gpg.js'
import {readEntries, writeEntries, type CraftEntry} from './helpers/tar-craft.js'

const ctx = {} as {
  dir: string
  server: FileServer
  lock: LockFile
  lockPath: string
  pub: string
  priv: string
  otherPub: string
  otherPriv: string
  bundle: string
  sha256: string
}

const test = suite('bundle')

/** How many of this process's file descriptors are open on `path`. */
function openOn(path: string): number {
  const target = realpathSync(path)
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === target
    } catch {
      return false
    }
  }).length
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-bundle-'))
  const upstream = join(ctx.dir, 'upstream')
  await makeDemoUpstream(upstream, 1 / 16)
  execFileSync('qemu-img', ['create', '-q', '-f', 'vhdx', join(upstream, 'edge.vhdx'), '64M'])
  const vhdxSum = execFileSync('sha256sum', [join(upstream, 'edge.vhdx')]).toString().split(' ')[0]
  ctx.server = await startFileServer({root: upstream})
  const u = ctx.server.url
  const manifest = join(ctx.dir, 'site.yaml')
  await writeFile(
    manifest,
    `apiVersion: ferry/v1
kind: Bundle
metadata: {name: test-site, version: 1.2.3}
spec:
  platforms: [linux/amd64]
  expiresIn: 30d
  vm:
    - name: azurelinux
      url: ${u}/azurelinux/3.0/azurelinux-3.0-x86_64.vhdx
      checksums: ${u}/azurelinux/3.0/SHA256SUMS
      signature: {url: ${u}/azurelinux/3.0/SHA256SUMS.asc, key: upstream/keys/azurelinux.pub.asc}
    - name: edge
      url: ${u}/edge.vhdx
      sha256: ${vhdxSum}
  k3s: {version: v1.30.4+k3s1, base: ${u}/k3s}
  kubernetes: {version: v1.30.4, binaries: [kubectl, kubelet], base: ${u}/k8s}
  health:
    - {name: ok, run: "true", timeout: 5s}
`,
  )
  const past = new Date(Date.now() - 3600_000)
  const keys = join(ctx.dir, 'keys')
  const release = await writeKeyPair(keys, 'release', await generateKeyPair({name: 'Release', date: past}))
  const other = await writeKeyPair(keys, 'other', await generateKeyPair({name: 'Other', date: past}))
  Object.assign(ctx, {pub: release.public, priv: release.private, otherPub: other.public, otherPriv: other.private})
  ctx.lock = await lockManifest(manifest, {store: new BlobStore(join(ctx.dir, 'store'))})
  ctx.lockPath = join(ctx.dir, 'site.lock.json')
  await writeLock(ctx.lock, ctx.lockPath)
  const built = await buildBundle(ctx.lock, {store: new BlobStore(join(ctx.dir, 'store')), signers: [await fileSigner(ctx.priv)], outDir: join(ctx.dir, 'out')})
  ctx.bundle = built.path
  ctx.sha256 = built.sha256
})

test.after(async () => {
  await ctx.server?.close()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('the archive opens with GNU tar, entries in the documented order, each blob once', async () => {
  const names = execFileSync('tar', ['-tf', ctx.bundle]).toString().trim().split('\n')
  assert.equal(names.slice(0, 4), ['bundle.json', 'bundle.json.asc', 'oci-layout', 'index.json'])
  const blobs = names.slice(4)
  assert.ok(blobs.every((n) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(n)))
  assert.equal(blobs, [...blobs].sort())
  assert.equal(new Set(blobs).size, blobs.length)
  // one blob per artifact, a chunk index per VM image, the SBOM and the provenance
  assert.is(blobs.length, ctx.lock.artifacts.length + ctx.lock.artifacts.filter((a) => a.kind === 'vm').length + 2)
  assert.ok(ctx.bundle.endsWith('test-site-1.2.3.ferry.tar'))
})

test('gpg verifies the signature over bundle.json given the public key', async () => {
  const gpg = await makeGnupgHome()
  const x = join(ctx.dir, 'x-gpg')
  await mkdir(x)
  execFileSync('tar', ['-xf', ctx.bundle, '-C', x, 'bundle.json', 'bundle.json.asc'])
  await gpg.import(ctx.pub)
  const r = await gpg.verify(join(x, 'bundle.json.asc'), join(x, 'bundle.json'))
  await gpg.cleanup()
  assert.ok(r.ok, r.output)
  assert.is(r.valid.length, 1)
})

test('extracted, the bundle is an OCI image layout umoci reads, and every blob hashes to its name', async () => {
  const x = join(ctx.dir, 'x-oci')
  await mkdir(x)
  execFileSync('tar', ['-xf', ctx.bundle, '-C', x])
  execFileSync('umoci', ['ls', '--layout', x])
  for (const hex of await readdir(join(x, 'blobs', 'sha256'))) {
    const sum = execFileSync('sha256sum', [join(x, 'blobs', 'sha256', hex)]).toString().split(' ')[0]
    assert.is(sum, hex)
  }
  const meta = JSON.parse(await readFile(join(x, 'bundle.json'), 'utf8'))
  assert.is(meta.schema, 'ferry.bundle/v1')
  assert.is(meta.artifacts.find((a: {name: string}) => a.name.includes('azurelinux')).upstream.verifiedBy, 'checksum-file+pgp')
})

test('two builds from one lock are byte-identical, even from an empty store', async () => {
  const r = await ferry(['bundle', 'build', ctx.lockPath, '--key', ctx.priv, '--out', join(ctx.dir, 'out2'), '--store', join(ctx.dir, 'store2'), '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json?.result.sha256, ctx.sha256)
  assert.equal(await readFile(r.json?.result.path), await readFile(ctx.bundle))
})

test('verify accepts the bundle (core and CLI)', async () => {
  const input = await openBundleInput(ctx.bundle)
  const report = await verifyBundleStream(input.open(), {keys: await readPublicKeys([ctx.pub])})
  assert.is(report.manifest.version, '1.2.3')
  assert.is(report.bytes, input.size)
  const r = await ferry(['bundle', 'verify', ctx.bundle, '--key', ctx.pub, '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.json?.result.blobs, ctx.lock.artifacts.length + ctx.lock.artifacts.filter((a) => a.kind === 'vm').length + 2)
})

test('verify refuses an expired bundle (exit 4)', async () => {
  const input = await openBundleInput(ctx.bundle)
  const later = new Date(Date.parse(ctx.lock.expires) + 1000)
  try {
    await verifyBundleStream(input.open(), {keys: await readPublicKeys([ctx.pub]), now: later})
    assert.unreachable('expired bundle accepted')
  } catch (err) {
    assert.is((err as {code: string}).code, 'EXPIRED')
    assert.is((err as {exit: number}).exit, 4)
  }
  // the refusal closed the bundle file (a device importing bundle after bundle keeps no descriptors)
  assert.is(openOn(ctx.bundle), 0)
})

test('inspect shows name, version, dates, signer and artifacts without reading the blobs', async () => {
  const r = await ferry(['bundle', 'inspect', ctx.bundle])
  assert.is(r.code, 0, r.stderr)
  for (const want of ['test-site 1.2.3', ctx.lock.expires, 'k3s/', 'azurelinux']) assert.ok(r.stdout.includes(want), `${want} in ${r.stdout}`)
  const j = await ferry(['bundle', 'inspect', ctx.bundle, '--key', ctx.pub, '--json'])
  // bundle.json's artifacts: the lock's, then the SBOM and the provenance
  assert.is(j.json?.result.artifacts.length, ctx.lock.artifacts.length + 2)
  assert.equal(j.json?.result.documents.map((d: {name: string}) => d.name), ['ferry/sbom.cdx.json', 'ferry/provenance.intoto.json'])
  assert.match(r.stdout, 'ferry/sbom.cdx.json  application/vnd.cyclonedx+json')
  assert.is(j.json?.result.verifiedBy.length, 1)
})

// ---- the verify corpus: each tampered bundle is refused with its exit code ----

async function tampered(name: string, change: (entries: CraftEntry[]) => CraftEntry[] | Buffer): Promise<string> {
  const entries = await readEntries(ctx.bundle)
  const out = change(entries)
  const file = join(ctx.dir, `${name}.ferry.tar`)
  if (Buffer.isBuffer(out)) await writeFile(file, out)
  else await writeEntries(file, out)
  return file
}

async function refused(file: string, status: number, code: RegExp, key = ctx.pub) {
  const r = await ferry(['bundle', 'verify', file, '--key', key, '--json'])
  assert.is(r.code, status, `exit ${r.code}: ${r.stdout}${r.stderr}`)
  assert.is(r.json?.status, status)
  assert.match(r.json?.error?.code ?? '', code)
  assert.ok((r.json?.error?.message ?? '').length > 10)
  return r.json!.error!
}

const flip = (b: Buffer, at = Math.floor(b.length / 2)) => {
  const c = Buffer.from(b)
  c[at] ^= 0x01
  return c
}

test('inspect stops after the head and leaves no file open behind it', async () => {
  const info = await inspectBundle(await openBundleInput(ctx.bundle))
  assert.is(info.manifest.name, 'test-site')
  assert.is(openOn(ctx.bundle), 0)
})

test('corpus: a flipped byte in bundle.json → exit 4 (signature no longer matches)', async () => {
  const f = await tampered('flip-json', (e) => e.map((x) => (x.path === 'bundle.json' ? {...x, data: flip(x.data)} : x)))
  await refused(f, 4, /SIGNATURE|BAD/)
})

test('corpus: a flipped byte in the signature → exit 4', async () => {
  const f = await tampered('flip-sig', (e) => e.map((x) => (x.path === 'bundle.json.asc' ? {...x, data: flip(x.data, 120)} : x)))
  await refused(f, 4, /./)
})

test('corpus: a flipped byte in a blob → exit 3 naming the blob', async () => {
  let victim = ''
  const f = await tampered('flip-blob', (e) =>
    e.map((x, i) => {
      if (i !== 5) return x
      victim = x.path.split('/').pop()!
      return {...x, data: flip(x.data)}
    }),
  )
  const err = await refused(f, 3, /DIGEST_MISMATCH/)
  assert.ok(err.message.includes(victim))
})

test('corpus: a truncated archive → exit 3', async () => {
  const whole = await readFile(ctx.bundle)
  const f = join(ctx.dir, 'truncated.ferry.tar')
  await writeFile(f, whole.subarray(0, Math.floor(whole.length * 0.7)))
  await refused(f, 3, /TRUNCATED/)
})

test('corpus: an extra entry → exit 3', async () => {
  const f = await tampered('extra', (e) => [...e, {path: 'blobs/sha256/' + 'f'.repeat(64), data: Buffer.from('extra')}])
  await refused(f, 3, /UNEXPECTED_ENTRY|DIGEST_MISMATCH/)
  const g = await tampered('extra-name', (e) => [...e.slice(0, 4), {path: 'README', data: Buffer.from('hi')}, ...e.slice(4)])
  await refused(g, 3, /UNEXPECTED_ENTRY/)
})

test('corpus: a missing blob → exit 3 naming it', async () => {
  let gone = ''
  const f = await tampered('missing', (e) => e.filter((x, i) => (i === 6 ? ((gone = x.path.split('/').pop()!), false) : true)))
  const err = await refused(f, 3, /MISSING_BLOB/)
  assert.ok(err.message.includes(gone))
})

test('corpus: a duplicated entry → exit 3', async () => {
  const f = await tampered('dup', (e) => [...e.slice(0, 6), e[5], ...e.slice(6)])
  await refused(f, 3, /DUPLICATE_ENTRY/)
  const g = await tampered('dup-json', (e) => [e[0], e[0], ...e.slice(1)])
  await refused(g, 3, /DUPLICATE_ENTRY/)
})

test('corpus: symlink and hardlink entries → exit 3', async () => {
  const s = await tampered('symlink', (e) => [...e.slice(0, 4), {path: 'blobs/sha256/evil', data: Buffer.alloc(0), type: 'SymbolicLink', linkpath: '/etc/passwd'}, ...e.slice(4)])
  assert.match((await refused(s, 3, /UNSAFE_ENTRY/)).message, /symbolic link/)
  const h = await tampered('hardlink', (e) => [...e.slice(0, 4), {path: 'blobs/sha256/evil', data: Buffer.alloc(0), type: 'Link', linkpath: 'bundle.json'}, ...e.slice(4)])
  assert.match((await refused(h, 3, /UNSAFE_ENTRY/)).message, /hard link/)
})

test('corpus: "../" and absolute paths → exit 3', async () => {
  const up = await tampered('dotdot', (e) => [...e.slice(0, 4), {path: 'blobs/../../etc/cron.d/x', data: Buffer.from('x')}, ...e.slice(4)])
  await refused(up, 3, /UNSAFE_PATH/)
  const abs = await tampered('abs', (e) => [...e.slice(0, 4), {path: '/etc/cron.d/x', data: Buffer.from('x')}, ...e.slice(4)])
  await refused(abs, 3, /UNSAFE_PATH/)
})

test('corpus: a bundle signed by another key → exit 4 naming the key', async () => {
  const r = await ferry(['bundle', 'verify', ctx.bundle, '--key', ctx.otherPub, '--json'])
  assert.is(r.code, 4)
  assert.match(r.json?.error?.message ?? '', /[0-9A-F]{16}/)
})

test('corpus: entries out of order, unsigned, garbage → refused', async () => {
  const swapped = await tampered('order', (e) => [e[1], e[0], ...e.slice(2)])
  await refused(swapped, 3, /UNEXPECTED_ENTRY/)
  const unsigned = await tampered('unsigned', (e) => [e[0], ...e.slice(2)])
  await refused(unsigned, 4, /UNSIGNED/)
  const garbage = join(ctx.dir, 'garbage.ferry.tar')
  await writeFile(garbage, Buffer.alloc(4096, 7))
  await refused(garbage, 3, /BAD_HEADER/)
})

test.run()
