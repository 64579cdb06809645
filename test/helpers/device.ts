// Fixtures for device tests: signing keys, small signed bundles built by the real buildBundle from a lock
// written here (artifacts are put in a blob store first, so nothing is fetched), and empty device roots.
//
//   const k1 = await makeKey(dir, 'k1')
//   const dev = await makeDevice(join(dir, 'dev'), {trust: [k1]})
//   const b = await makeBundle({dir, version: '1.0.0', signers: [k1]})
//   await ferry(['device', 'import', b.path, '--root', dev.root])
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdir, readdir, readFile, readlink, stat} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {Readable} from 'node:stream'
import {buildBundle} from '../../src/bundle/build.js'
import type {BundleManifest} from '../../src/bundle/format.js'
import {rotationFromFiles} from '../../src/bundle/rotation.js'
import {devicePaths, type DevicePaths} from '../../src/device/paths.js'
import {hostPlatform} from '../../src/device/platform.js'
import {addTrustedKey} from '../../src/device/trust-store.js'
import {type ArtifactKind, HealthCheck, type LockedArtifact, type LockFile} from '../../src/manifest/lock-format.js'
import {BlobStore} from '../../src/store/blob-store.js'
import {generateKeyPair, writeKeyPair} from '../../src/trust/keys.js'
import {fileSigner} from '../../src/trust/sign.js'

/** Keys are dated here so bundles may be "created" any time after it (signature time = created). */
export const KEY_DATE = new Date('2020-01-01T00:00:00Z')
const DAY = 86_400_000

export interface TestKey {
  name: string
  fingerprint: string
  /** armored public key file */
  pub: string
  /** armored private key file */
  priv: string
}

/** A v4 Ed25519 key pair written to `<dir>/keys/<name>.{pub,key}.asc`. */
export async function makeKey(dir: string, name: string): Promise<TestKey> {
  const pair = await generateKeyPair({name: `Test ${name}`, date: KEY_DATE})
  const files = await writeKeyPair(join(dir, 'keys'), name, pair)
  return {name, fingerprint: pair.fingerprint, pub: files.public, priv: files.private}
}

export interface ArtifactSpec {
  name: string
  kind?: ArtifactKind
  /** where the device installs it inside a slot (bin/…, vm/…, files/…, images/…) */
  dest?: string
  platform?: string
  /** the upstream version (k3s, kubernetes) */
  version?: string
  /** the bytes: given, a file streamed into the store, or `size` pseudo-random bytes derived from `seed` */
  content: string | Buffer | {file: string} | {size: number; seed: string}
  mediaType?: string
}

/** A small release: two binaries and a file that change with the version, a VM image that does not. */
export function defaultArtifacts(version: string): ArtifactSpec[] {
  return [
    {name: 'k3s/k3s', kind: 'k3s', dest: 'bin/k3s', content: `#!/bin/sh\necho "k3s ${version}"\n`},
    {name: 'kubernetes/kubectl', kind: 'kubernetes', dest: 'bin/kubectl', content: `#!/bin/sh\necho "kubectl ${version}"\n`},
    {name: 'vm/edge.qcow2', kind: 'vm', dest: 'vm/edge.qcow2', content: {size: 256 * 1024, seed: 'edge-vm'}},
    {name: 'files/release-notes.txt', kind: 'file', dest: 'files/release-notes.txt', content: `release ${version}\n`},
  ]
}

export interface BundleSpec {
  /** work folder: keys/, store/ and the bundles go under it */
  dir: string
  name?: string
  version: string
  /** default: the host's platform (linux/amd64 here) */
  platforms?: string[]
  /** default: one hour ago (the signature carries this date) */
  created?: Date
  /** milliseconds after `created`; default 30 days. Ignored when `expires` is given */
  expiresIn?: number
  expires?: Date
  signers: TestKey[]
  health?: Array<Partial<HealthCheck> & {name: string}>
  /** default: defaultArtifacts(version) */
  artifacts?: ArtifactSpec[]
  /** carry a key rotation to these keys */
  rotation?: {to: TestKey[]; threshold?: number; revoke?: string[]}
  /** output folder; default a fresh `<dir>/bundles/<n>` so equal versions never overwrite each other */
  outDir?: string
}

export interface MadeBundle {
  path: string
  /** sha256 digest of bundle.json (what the device calls the release digest) */
  digest: string
  size: number
  manifest: BundleManifest
}

let made = 0

function pseudoRandom(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size)
  let block = createHash('sha256').update(seed).digest()
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off)
    block = createHash('sha256').update(block).digest()
  }
  return out
}

async function ingest(store: BlobStore, spec: ArtifactSpec): Promise<{sha256: string; size: number}> {
  const c = spec.content
  const source = typeof c === 'string' || Buffer.isBuffer(c) ? Readable.from([Buffer.from(c)]) : 'file' in c ? createReadStream(c.file) : Readable.from([pseudoRandom(c.size, c.seed)])
  const got = await store.ingest(source, {what: spec.name})
  return {sha256: got.digest.slice('sha256:'.length), size: got.size}
}

/** The lock a bundle of `spec` is built from, its artifacts put in the blob store `<dir>/store` (nothing to fetch). */
export async function makeLock(spec: BundleSpec): Promise<LockFile> {
  const store = new BlobStore(join(spec.dir, 'store'))
  const created = spec.created ?? new Date(Date.now() - 3600_000)
  const expires = spec.expires ?? new Date(created.getTime() + (spec.expiresIn ?? 30 * DAY))
  const artifacts: LockedArtifact[] = []
  for (const a of spec.artifacts ?? defaultArtifacts(spec.version)) {
    const {sha256, size} = await ingest(store, a)
    artifacts.push({
      name: a.name,
      kind: a.kind ?? 'file',
      url: `http://fixture.invalid/${a.name}`,
      sha256,
      size,
      mediaType: a.mediaType ?? 'application/octet-stream',
      ...(a.dest ? {dest: a.dest} : {}),
      ...(a.platform ? {platform: a.platform} : {}),
      ...(a.version ? {version: a.version} : {}),
      upstream: {verifiedBy: 'sha256'},
    })
  }
  const lock: LockFile = {
    schema: 'ferry.lock/v1',
    name: spec.name ?? 'edge-site',
    version: spec.version,
    resolved: created.toISOString(),
    expires: expires.toISOString(),
    platforms: spec.platforms ?? [hostPlatform()],
    health: (spec.health ?? []).map((h) => HealthCheck.parse(h)),
    artifacts,
  }
  return lock
}

/** Builds a signed bundle with the real build code; returns its path and bundle.json digest. */
export async function makeBundle(spec: BundleSpec): Promise<MadeBundle> {
  const store = new BlobStore(join(spec.dir, 'store'))
  const created = spec.created ?? new Date(Date.now() - 3600_000)
  const lock = await makeLock({...spec, created})
  const signers = []
  for (const k of spec.signers) signers.push(await fileSigner(k.priv))
  const rotation = spec.rotation ? await rotationFromFiles(spec.rotation.to.map((k) => k.pub), spec.rotation.threshold, spec.rotation.revoke) : undefined
  const outDir = spec.outDir ?? join(spec.dir, 'bundles', String(++made))
  const built = await buildBundle(lock, {store, signers, outDir, now: created, ...(rotation ? {rotation} : {})})
  const bundleJson = JSON.stringify(built.manifest, null, 2) + '\n'
  return {path: built.path, digest: 'sha256:' + createHash('sha256').update(bundleJson).digest('hex'), size: built.size, manifest: built.manifest}
}

export interface TestDevice {
  root: string
  paths: DevicePaths
}

/** An empty device root (the folder a real device calls `/`), trusting `trust` keys if given. */
export async function makeDevice(root: string, opts: {trust?: TestKey[]} = {}): Promise<TestDevice> {
  await mkdir(root, {recursive: true})
  const paths = devicePaths(root)
  // provisioned: Ferry's folder exists, as `device trust add` leaves it
  await mkdir(paths.base, {recursive: true})
  for (const k of opts.trust ?? []) await addTrustedKey(paths, k.pub)
  return {root, paths}
}

/**
 * Everything import and apply may change, as one comparable string: state.json's bytes, the trust store's files,
 * and every file under slots/ with its size and mode, plus where `current` points. Blobs are left out (a failed
 * import may leave verified blobs behind; they are collected at the next commit).
 */
export async function deviceSnapshot(paths: DevicePaths): Promise<string> {
  const lines: string[] = []
  const state = await readFile(paths.state, 'utf8').catch(() => '(no state.json)')
  lines.push(`state.json: ${state}`)
  lines.push(`current -> ${await readlink(paths.current).catch(() => '(none)')}`)
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else {
        const s = await stat(p)
        const body = s.size < 64 * 1024 ? createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 16) : String(s.ino)
        lines.push(`${relative(paths.base, p)} ${s.size} ${(s.mode & 0o777).toString(8)} ${body}`)
      }
    }
  }
  await walk(paths.slots)
  await walk(paths.trust)
  return lines.join('\n')
}
