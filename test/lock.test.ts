import {execFile} from 'node:child_process'
import {createReadStream} from 'node:fs'
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, unlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {promisify} from 'node:util'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import {loadBuildInput} from '../src/manifest/build-input.js'
import {autoVersion, lockManifest, readLock, writeLock} from '../src/manifest/lock.js'
import {findChecksum, requireChecksum} from '../src/sources/checksums.js'
import {BlobStore} from '../src/store/blob-store.js'
import {FerryError} from '../src/errors.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'

const run = promisify(execFile)
const repo = join(dirname(new URL(import.meta.url).pathname), '..')
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

const K3S = 'v1.30.4+k3s1'
const K8S = 'v1.30.4'
const VHDX = 'azurelinux-3.0-x86_64.vhdx'
const NOW = new Date('2026-11-05T14:30:07.250Z')

interface Fixture {
  root: string
  up: string
  site: string
  server: FileServer
  gnupg: string
  /** fingerprint of the key that signs the VM checksum file */
  fingerprint: string
  digests: Record<string, {sha256: string; size: number}>
  manifest: (overrides?: {vmSignatureKey?: string; extra?: string; k3s?: string}) => string
}

let fx: Fixture

async function gpg(home: string, ...args: string[]): Promise<string> {
  const {stdout} = await run('gpg', ['--batch', '--yes', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
    env: {...process.env, GNUPGHOME: home},
  })
  return stdout
}

async function put(path: string, data: Buffer | string): Promise<Buffer> {
  await mkdir(dirname(path), {recursive: true})
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data)
  await writeFile(path, bytes)
  return bytes
}

/** Upstream trees laid out like github.com/k3s-io releases, dl.k8s.io and an Azure Linux mirror. */
async function makeFixture(): Promise<Fixture> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-lock-'))
  const up = join(root, 'upstream')
  const site = join(root, 'site')
  const digests: Fixture['digests'] = {}
  const record = (name: string, b: Buffer) => (digests[name] = {sha256: sha256(b), size: b.length})

  // k3s: binaries and air-gap images per arch, one checksum list per arch
  const k3sDir = join(up, 'k3s', K3S)
  for (const [arch, bin] of [['amd64', 'k3s'], ['arm64', 'k3s-arm64']]) {
    const binary = await put(join(k3sDir, bin), randomBytes(70_000))
    const images = await put(join(k3sDir, `k3s-airgap-images-${arch}.tar.zst`), randomBytes(50_000))
    record(bin, binary)
    record(`k3s-airgap-images-${arch}.tar.zst`, images)
    const list = [
      `${sha256(randomBytes(8))}  k3s-images.txt`,
      `${sha256(images)}  k3s-airgap-images-${arch}.tar.zst`,
      `${sha256(binary)}  ${bin}`,
    ].join('\n')
    await put(join(k3sDir, `sha256sum-${arch}.txt`), `${list}\n`)
  }

  // dl.k8s.io: release/<v>/bin/linux/<arch>/<bin> beside <bin>.sha256 (bare hex)
  for (const bin of ['kubelet', 'kubectl', 'kubeadm']) {
    const p = join(up, 'k8s', 'release', K8S, 'bin', 'linux', 'amd64', bin)
    const b = await put(p, randomBytes(30_000))
    record(bin, b)
    await put(`${p}.sha256`, sha256(b))
  }

  // Azure Linux: a real VHDX, a checksum file with CRLF ends and binary markers, signed by gpg
  const azl = join(up, 'azl')
  await mkdir(azl, {recursive: true})
  await run('qemu-img', ['create', '-q', '-f', 'vhdx', join(azl, VHDX), '64M'])
  const vhdx = await readFile(join(azl, VHDX))
  record(VHDX, vhdx)
  const sums = ['# Azure Linux 3.0 images', `${sha256(randomBytes(8))} *azurelinux-3.0-aarch64.vhdx`, '', `${sha256(vhdx)} *${VHDX}`, ''].join('\r\n')
  await put(join(azl, 'SHA256SUMS'), sums)

  const gnupg = join(root, 'gnupg')
  await mkdir(gnupg, {mode: 0o700})
  await gpg(gnupg, '--quick-gen-key', 'Azure Linux Test <azl@example.test>', 'ed25519', 'sign', 'never')
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(await gpg(gnupg, '--with-colons', '--list-keys'))![1]
  await gpg(gnupg, '--detach-sign', '--armor', '-o', join(azl, 'SHA256SUMS.asc'), join(azl, 'SHA256SUMS'))
  await put(join(site, 'keys', 'azurelinux.asc'), await gpg(gnupg, '--armor', '--export', fingerprint))

  // a plain file pinned by sha256
  const tool = await put(join(up, 'files', 'tool.tar.gz'), randomBytes(12_345))
  record('tool.tar.gz', tool)

  const server = await startFileServer({
    root: up,
    redirects: {'/channels/stable': `/k3s-io/k3s/releases/tag/${encodeURIComponent(K3S)}`},
  })
  const u = server.url
  const manifest: Fixture['manifest'] = (o = {}) => `apiVersion: ferry/v1
kind: Bundle
metadata:
  name: edge-site
  version: ${o.extra?.includes('version: auto') ? 'auto' : '2026.11.0'}
spec:
  platforms: [linux/amd64]
  expiresIn: 30d
  vm:
    - name: azurelinux
      url: ${u}/azl/${VHDX}
      checksums: ${u}/azl/SHA256SUMS
      signature: {url: ${u}/azl/SHA256SUMS.asc, key: ${o.vmSignatureKey ?? 'keys/azurelinux.asc'}}
  k3s:
    ${o.k3s ?? `version: ${K3S}`}
    base: ${u}/k3s
  kubernetes:
    version: ${K8S}
    base: ${u}/k8s
  images: []
  files:
    - url: ${u}/files/tool.tar.gz
      sha256: ${digests['tool.tar.gz'].sha256}
      dest: opt/tool.tar.gz
  health:
    - name: nodes-ready
      run: k3s kubectl get nodes
      timeout: 2m
      retries: 3
`
  return {root, up, site, server, gnupg, fingerprint, digests, manifest}
}

async function writeManifest(text: string, name = 'site.yaml'): Promise<string> {
  const path = join(fx.site, name)
  await writeFile(path, text)
  return path
}

async function lockError(path: string, opts = {}): Promise<FerryError> {
  try {
    await lockManifest(path, {now: NOW, ...opts})
  } catch (err) {
    assert.instance(err, FerryError, `expected a FerryError, got ${(err as Error).stack}`)
    return err as FerryError
  }
  throw new assert.Assertion({message: 'expected lockManifest to fail', operator: 'throws', generated: false})
}

const lock = suite('manifest lock')
lock.before(async () => {
  fx = await makeFixture()
})
lock.after(async () => {
  await fx.server.close()
  await run('gpgconf', ['--kill', 'gpg-agent'], {env: {...process.env, GNUPGHOME: fx.gnupg}}).catch(() => undefined)
  await rm(fx.root, {recursive: true, force: true})
})

lock('resolves vm, k3s, kubernetes and files with digests, sizes and upstream proof', async () => {
  const l = await lockManifest(await writeManifest(fx.manifest()), {now: NOW})
  const u = fx.server.url
  assert.is(l.schema, 'ferry.lock/v1')
  assert.is(l.name, 'edge-site')
  assert.is(l.version, '2026.11.0')
  assert.is(l.resolved, '2026-11-05T14:30:07Z')
  assert.is(l.expires, '2026-12-05T14:30:07Z')
  assert.equal(l.platforms, ['linux/amd64'])
  assert.equal(l.health, [{name: 'nodes-ready', run: 'k3s kubectl get nodes', timeout: 120, retries: 3, interval: 5}])
  assert.equal(
    l.artifacts.map((a) => a.name),
    [
      'vm/azurelinux',
      'k3s/k3s-airgap-images-amd64.tar.zst',
      'k3s/k3s-amd64',
      'kubernetes/kubeadm-amd64',
      'kubernetes/kubectl-amd64',
      'kubernetes/kubelet-amd64',
      'files/tool.tar.gz',
    ],
  )
  const byName = Object.fromEntries(l.artifacts.map((a) => [a.name, a]))
  const expect = (name: string, file: string) => {
    assert.is(byName[name].sha256, fx.digests[file].sha256, `${name} sha256`)
    assert.is(byName[name].size, fx.digests[file].size, `${name} size`)
  }
  expect('vm/azurelinux', VHDX)
  expect('k3s/k3s-amd64', 'k3s')
  expect('k3s/k3s-airgap-images-amd64.tar.zst', 'k3s-airgap-images-amd64.tar.zst')
  expect('kubernetes/kubectl-amd64', 'kubectl')
  expect('files/tool.tar.gz', 'tool.tar.gz')

  assert.equal(byName['vm/azurelinux'], {
    name: 'vm/azurelinux',
    kind: 'vm',
    url: `${u}/azl/${VHDX}`,
    sha256: fx.digests[VHDX].sha256,
    size: fx.digests[VHDX].size,
    mediaType: 'application/vnd.ferry.vm.vhdx',
    dest: `vm/${VHDX}`,
    upstream: {verifiedBy: 'checksum-file+pgp', checksumUrl: `${u}/azl/SHA256SUMS`, signatureUrl: `${u}/azl/SHA256SUMS.asc`, key: fx.fingerprint},
  })
  const k3s = byName['k3s/k3s-amd64']
  assert.is(k3s.url, `${u}/k3s/v1.30.4%2Bk3s1/k3s`)
  assert.is(k3s.dest, 'bin/k3s')
  assert.is(k3s.platform, 'linux/amd64')
  assert.is(k3s.version, K3S)
  assert.equal(k3s.upstream, {verifiedBy: 'checksum-file', checksumUrl: `${u}/k3s/v1.30.4%2Bk3s1/sha256sum-amd64.txt`})
  assert.is(byName['k3s/k3s-airgap-images-amd64.tar.zst'].mediaType, 'application/zstd')
  assert.is(byName['k3s/k3s-airgap-images-amd64.tar.zst'].dest, 'images/k3s-airgap-images-amd64.tar.zst')
  const kubectl = byName['kubernetes/kubectl-amd64']
  assert.is(kubectl.url, `${u}/k8s/release/${K8S}/bin/linux/amd64/kubectl`)
  assert.equal(kubectl.upstream, {verifiedBy: 'checksum-file', checksumUrl: `${kubectl.url}.sha256`})
  assert.is(kubectl.dest, 'bin/kubectl')
  assert.equal(byName['files/tool.tar.gz'].upstream, {verifiedBy: 'sha256'})
  assert.is(byName['files/tool.tar.gz'].dest, 'opt/tool.tar.gz')
})

lock('the same manifest and time give a byte-identical lock file', async () => {
  const path = await writeManifest(fx.manifest())
  const a = join(fx.root, 'a.lock.json')
  const b = join(fx.root, 'b.lock.json')
  await writeLock(await lockManifest(path, {now: NOW}), a)
  await writeLock(await lockManifest(path, {now: NOW}), b)
  const text = await readFile(a, 'utf8')
  assert.is(text, await readFile(b, 'utf8'))
  assert.ok(text.endsWith('}\n'))
  assert.ok(text.includes('\n  "schema": "ferry.lock/v1",\n'), 'two-space JSON')
})

lock('k3s for two platforms takes each arch from its own checksum list', async () => {
  const text = fx.manifest({k3s: `version: ${K3S}\n    airgapImages: false\n    arches: [amd64, arm64]`})
  const l = await lockManifest(await writeManifest(text), {now: NOW})
  const k3s = l.artifacts.filter((a) => a.kind === 'k3s')
  assert.equal(
    k3s.map((a) => [a.name, a.platform, a.sha256]),
    [
      ['k3s/k3s-amd64', 'linux/amd64', fx.digests.k3s.sha256],
      ['k3s/k3s-arm64', 'linux/arm64', fx.digests['k3s-arm64'].sha256],
    ],
  )
})

lock('a k3s channel resolves through the channel server redirect', async () => {
  const text = fx.manifest({k3s: `channel: stable\n    channelUrl: ${fx.server.url}/channels`})
  const l = await lockManifest(await writeManifest(text), {now: NOW})
  const k3s = l.artifacts.find((a) => a.name === 'k3s/k3s-amd64')!
  assert.is(k3s.version, K3S)
  assert.is(k3s.sha256, fx.digests.k3s.sha256)
})

lock('an unknown k3s channel is an upstream error (exit 5)', async () => {
  const e = await lockError(await writeManifest(fx.manifest({k3s: `channel: nightly\n    channelUrl: ${fx.server.url}/channels`})))
  assert.is(e.exit, 5)
  assert.is(e.code, 'CHANNEL_UNKNOWN')
})

lock('version auto becomes YYYY.M.DHHMM of the lock time', async () => {
  const l = await lockManifest(await writeManifest(fx.manifest({extra: 'version: auto'})), {now: NOW})
  assert.is(l.version, '2026.11.51430')
  assert.is(autoVersion(new Date('2027-01-31T23:59:00Z')), '2027.1.312359')
  assert.is(autoVersion(new Date('2027-01-01T00:00:00Z')), '2027.1.10000')
})

lock('a tampered checksum file is refused (exit 4)', async () => {
  const sums = join(fx.up, 'azl', 'SHA256SUMS')
  const original = await readFile(sums)
  try {
    await writeFile(sums, original.toString('latin1').replace(fx.digests[VHDX].sha256, 'f'.repeat(64)), 'latin1')
    const e = await lockError(await writeManifest(fx.manifest()))
    assert.is(e.exit, 4)
    assert.is(e.code, 'SIGNATURE_BAD')
    assert.match(e.message, 'SHA256SUMS')
  } finally {
    await writeFile(sums, original)
  }
})

lock('a checksum file signed by a key not given in the manifest is refused (exit 4)', async () => {
  const other = join(fx.root, 'gnupg-other')
  await mkdir(other, {mode: 0o700})
  try {
    await gpg(other, '--quick-gen-key', 'Someone Else <else@example.test>', 'ed25519', 'sign', 'never')
    await put(join(fx.site, 'keys', 'other.asc'), await gpg(other, '--armor', '--export'))
    const e = await lockError(await writeManifest(fx.manifest({vmSignatureKey: 'keys/other.asc'})))
    assert.is(e.exit, 4)
    assert.is(e.code, 'SIGNATURE_UNKNOWN_KEY')
  } finally {
    await run('gpgconf', ['--kill', 'gpg-agent'], {env: {...process.env, GNUPGHOME: other}}).catch(() => undefined)
  }
})

lock('a checksum file that does not list the asset is an integrity error (exit 3)', async () => {
  const list = join(fx.up, 'k3s', K3S, 'sha256sum-amd64.txt')
  const original = await readFile(list, 'utf8')
  try {
    await writeFile(list, original.split('\n').filter((l) => !l.endsWith('  k3s')).join('\n'))
    const e = await lockError(await writeManifest(fx.manifest()))
    assert.is(e.exit, 3)
    assert.is(e.code, 'CHECKSUM_NOT_LISTED')
    assert.match(e.message, 'sha256sum-amd64.txt does not list k3s')
  } finally {
    await writeFile(list, original)
  }
})

lock('a missing upstream asset is an upstream error (exit 5)', async () => {
  const bin = join(fx.up, 'k8s', 'release', K8S, 'bin', 'linux', 'amd64', 'kubeadm')
  const original = await readFile(bin)
  try {
    await unlink(bin)
    const e = await lockError(await writeManifest(fx.manifest()))
    assert.is(e.exit, 5)
    assert.match(e.message, 'kubeadm')
  } finally {
    await writeFile(bin, original)
  }
})

lock('two artifacts with one name are refused (exit 2)', async () => {
  const text = fx.manifest().replace(
    '  health:',
    `    - url: ${fx.server.url}/files/tool.tar.gz\n      sha256: ${fx.digests['tool.tar.gz'].sha256}\n  health:`,
  )
  const e = await lockError(await writeManifest(text))
  assert.is(e.exit, 2)
  assert.is(e.code, 'DUPLICATE_ARTIFACT')
})

lock('an upstream that gives no size has the artifact downloaded into the store for it', async () => {
  const server = await startFileServer({
    root: fx.up,
    // Neither HEAD nor a ranged GET tells the size: every answer is a whole, chunked body.
    intercept: async (req, res, ctx) => {
      if (!ctx.file) return false
      res.writeHead(200, {'Content-Type': 'application/octet-stream'})
      if (req.method === 'HEAD') res.end()
      else await pipeline(createReadStream(ctx.file), res)
      return true
    },
  })
  const store = new BlobStore(join(fx.root, 'store'))
  try {
    const text = `apiVersion: ferry/v1
kind: Bundle
metadata: {name: files-only, version: 1.0.0}
spec:
  files:
    - url: ${server.url}/files/tool.tar.gz
      sha256: ${fx.digests['tool.tar.gz'].sha256}
`
    const l = await lockManifest(await writeManifest(text, 'files.yaml'), {now: NOW, store})
    assert.is(l.artifacts[0].size, fx.digests['tool.tar.gz'].size)
    assert.ok(await store.has(`sha256:${fx.digests['tool.tar.gz'].sha256}`), 'the blob is in the store')
  } finally {
    await server.close()
  }
})

const files = suite('lock files')
files.before(async () => {
  fx = await makeFixture()
})
files.after(async () => {
  await fx.server.close()
  await run('gpgconf', ['--kill', 'gpg-agent'], {env: {...process.env, GNUPGHOME: fx.gnupg}}).catch(() => undefined)
  await rm(fx.root, {recursive: true, force: true})
})

files('readLock reads what writeLock wrote; loadBuildInput takes a lock or a manifest', async () => {
  const manifest = await writeManifest(fx.manifest())
  const l = await lockManifest(manifest, {now: NOW})
  const path = join(fx.root, 'manifest.lock.json')
  await writeLock(l, path)
  assert.equal(await readLock(path), l)
  assert.equal(await loadBuildInput(path), l)
  const fromManifest = await loadBuildInput(manifest, {now: NOW})
  assert.equal(fromManifest, l)
})

files('a damaged lock file is refused, naming the file and the field', async () => {
  const path = join(fx.root, 'bad.lock.json')
  const l = await lockManifest(await writeManifest(fx.manifest()), {now: NOW})
  const text = JSON.stringify({...l, artifacts: [{...l.artifacts[0], sha256: 'xyz'}]})
  await writeFile(path, text)
  try {
    await readLock(path)
    assert.unreachable('should have thrown')
  } catch (err) {
    assert.is((err as FerryError).exit, 2)
    assert.is((err as FerryError).code, 'LOCK_INVALID')
    assert.match((err as Error).message, `${path}: artifacts[0].sha256`)
  }
})

const cli = suite('ferry manifest lock (CLI)')
cli.before(async () => {
  fx = await makeFixture()
})
cli.after(async () => {
  await fx.server.close()
  await run('gpgconf', ['--kill', 'gpg-agent'], {env: {...process.env, GNUPGHOME: fx.gnupg}}).catch(() => undefined)
  await rm(fx.root, {recursive: true, force: true})
})

async function ferry(...args: string[]): Promise<{code: number; stdout: string; stderr: string}> {
  try {
    const {stdout, stderr} = await run(process.execPath, [join(repo, 'bin', 'dev.js'), ...args], {
      cwd: repo,
      env: {...process.env, NO_COLOR: '1', FERRY_STORE: join(fx.root, 'store')},
    })
    return {code: 0, stdout, stderr}
  } catch (err) {
    const e = err as {code: number; stdout: string; stderr: string}
    return {code: e.code, stdout: e.stdout, stderr: e.stderr}
  }
}

cli('writes the lock beside the manifest, named after it, and reports it as JSON', async () => {
  const manifest = await writeManifest(fx.manifest())
  const r = await ferry('manifest', 'lock', manifest, '--json')
  assert.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  const path = join(fx.site, 'site.lock.json')
  const total = Object.values(fx.digests).reduce((s, d) => s + d.size, 0)
  assert.is(out.status, 0)
  assert.is(out.result.path, path)
  assert.is(out.result.name, 'edge-site')
  assert.is(out.result.artifacts, 7)
  const written = await readLock(path)
  assert.is(out.result.bytes, written.artifacts.reduce((s, a) => s + (a.imageSize ?? a.size), 0))
  assert.ok(out.result.bytes < total, 'arm64 assets are not in an amd64 lock')
})

cli('two manifests in one folder keep two locks; an old manifest.lock.json of the same bundle is pointed out', async () => {
  const first = await writeManifest(fx.manifest(), 'lab.yaml')
  const second = await writeManifest(fx.manifest().replace('name: edge-site', 'name: other-site'), 'other.yml')
  assert.is((await ferry('manifest', 'lock', first, '--quiet')).code, 0)
  assert.is((await ferry('manifest', 'lock', second, '--quiet')).code, 0)
  assert.is((await readLock(join(fx.site, 'lab.lock.json'))).name, 'edge-site')
  assert.is((await readLock(join(fx.site, 'other.lock.json'))).name, 'other-site')

  const legacy = join(fx.site, 'manifest.lock.json')
  await writeFile(legacy, await readFile(join(fx.site, 'lab.lock.json')))
  const r = await ferry('manifest', 'lock', first, '--json')
  assert.is(r.code, 0, r.stderr)
  assert.is(JSON.parse(r.stdout).result.staleLock, legacy)
  assert.match(r.stderr, `${legacy} is an older lock of edge-site`)
  const other = await ferry('manifest', 'lock', second, '--json')
  assert.is(JSON.parse(other.stdout).result.staleLock, undefined, 'another bundle name is not this lock')
  await unlink(legacy)

  const pair = await generateKeyPair({name: 'Lock test'})
  const key = (await writeKeyPair(join(fx.root, 'keys-two-manifests'), 'release', pair)).private
  const build = await ferry('bundle', 'build', legacy, '--key', key, '--json')
  assert.is(build.code, 2)
  const msg = JSON.parse(build.stdout).error.message
  assert.match(msg, 'named after its manifest')
  assert.match(msg, join(fx.site, 'lab.lock.json'))
})

cli('--out chooses the lock file', async () => {
  const out = join(fx.root, 'elsewhere', 'site.lock.json')
  await mkdir(dirname(out), {recursive: true})
  const r = await ferry('manifest', 'lock', await writeManifest(fx.manifest()), '--out', out, '--quiet')
  assert.is(r.code, 0, r.stderr)
  assert.is((await readLock(out)).name, 'edge-site')
  assert.match(r.stdout, `Wrote ${out}`)
})

cli('malformed YAML exits 2 with the line number', async () => {
  const path = await writeManifest('apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: x, version: 1.0.0\nspec: {}\n', 'broken.yaml')
  const r = await ferry('manifest', 'lock', path)
  assert.is(r.code, 2)
  assert.match(r.stderr, new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:[34]: `))
})

cli('a tampered signature target exits 4 with a JSON error', async () => {
  const sums = join(fx.up, 'azl', 'SHA256SUMS')
  const original = await readFile(sums)
  try {
    await writeFile(sums, Buffer.concat([original, Buffer.from('# appended\r\n')]))
    const r = await ferry('manifest', 'lock', await writeManifest(fx.manifest()), '--json')
    assert.is(r.code, 4)
    const out = JSON.parse(r.stdout)
    assert.is(out.status, 4)
    assert.is(out.error.code, 'SIGNATURE_BAD')
  } finally {
    await writeFile(sums, original)
  }
})

cli('manifest check accepts the example site manifest', async () => {
  const r = await ferry('manifest', 'check', join(repo, 'manifests', 'site.yaml'), '--json')
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.is(JSON.parse(r.stdout).result.name, 'edge-site')
})

const sums = suite('checksum files')

sums('GNU lines with CRLF ends, binary markers, comments and blank lines', () => {
  const a = 'a'.repeat(64)
  const b = 'B'.repeat(64)
  const c = 'c'.repeat(64)
  const text = `# list\r\n\r\n${a}  k3s\r\n${b} *k3s-arm64\r\n${c}  dist/artifacts/k3s-armhf\r\n`
  assert.is(findChecksum(text, 'k3s'), a)
  assert.is(findChecksum(text, 'k3s-arm64'), 'b'.repeat(64))
  assert.is(findChecksum(text, 'k3s-armhf'), c, 'matched by basename')
  assert.is(findChecksum(text, 'k3s-s390x'), undefined)
})

sums('a bare hex file answers for the file it sits beside', () => {
  assert.is(findChecksum(`${'c'.repeat(64)}\n`, 'kubectl'), 'c'.repeat(64))
})

sums('BSD tag lines are understood', () => {
  assert.is(findChecksum(`SHA256 (image.iso) = ${'d'.repeat(64)}\n`, 'image.iso'), 'd'.repeat(64))
})

sums('a malformed line matters only when it concerns the file', () => {
  const text = `garbage line\n${'a'.repeat(64)}  k3s\nnot-a-digest  k3s-arm64\n`
  assert.is(findChecksum(text, 'k3s'), 'a'.repeat(64))
  assert.throws(() => findChecksum(text, 'k3s-arm64'), (e: FerryError) => e.code === 'CHECKSUM_MALFORMED' && e.exit === 3)
})

sums('two different digests for one name are refused', () => {
  const text = `${'a'.repeat(64)}  k3s\n${'b'.repeat(64)}  ./k3s\n`
  assert.throws(() => findChecksum(text, 'k3s'), (e: FerryError) => e.code === 'CHECKSUM_CONFLICT')
})

sums('requireChecksum names the list and the file it lacks', () => {
  assert.throws(
    () => requireChecksum(`${'a'.repeat(64)}  k3s\n`, 'k3s-arm64', 'https://x/sha256sum-arm64.txt'),
    (e: FerryError) => e.exit === 3 && e.message.includes('https://x/sha256sum-arm64.txt does not list k3s-arm64'),
  )
})

sums.run()
lock.run()
files.run()
cli.run()
