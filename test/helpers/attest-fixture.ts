// A bundle of every kind of artifact for the SBOM and provenance tests: a loopback upstream (VM
// image with a PGP-signed checksum list, k3s, Kubernetes, a file), a loopback registry with a
// cosign-signed image and a multi-arch index, locked once and built into `out/`.
import {execFileSync} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {buildBundle, type BuildResult} from '../../src/bundle/build.js'
import {startFileServer, type FileServer} from '../../src/demo/file-server.js'
import {makeDemoUpstream} from '../../src/demo/upstream.js'
import {lockManifest, writeLock} from '../../src/manifest/lock.js'
import type {LockFile} from '../../src/manifest/lock-format.js'
import {BlobStore} from '../../src/store/blob-store.js'
import {generateKeyPair, writeKeyPair} from '../../src/trust/keys.js'
import {fileSigner} from '../../src/trust/sign.js'
import {headManifest, makeKey, pushSigTag, writePublicKey, type TestKey} from './cosign.js'
import {makeImages, skopeo, startRegistry, type Registry} from './registry.js'

export interface AttestFixture {
  dir: string
  server: FileServer
  registry: Registry
  lock: LockFile
  lockPath: string
  pub: string
  priv: string
  otherPub: string
  cosign: TestKey
  /** the first build */
  built: BuildResult
  /** builds the lock again into `out` with the store `store` (fresh folders give a cold build) */
  build(out: string, store: string, extra?: Partial<Parameters<typeof buildBundle>[1]>, lock?: LockFile): Promise<BuildResult>
  close(): Promise<void>
}

export async function makeAttestFixture(prefix: string): Promise<AttestFixture> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const upstream = join(dir, 'upstream')
  const demo = await makeDemoUpstream(upstream, 1 / 32)
  const server = await startFileServer({root: upstream})
  const registry = await startRegistry(join(dir, 'registry'))
  const layout = join(dir, 'layout')
  makeImages(layout, 1, 1, 0.02, 0.02)
  const h = registry.host
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:img0`, `docker://${h}/app/api:1.4.2`])
  await skopeo(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${h}/app/multi:2.0`])
  const cosign = makeKey('ec')
  await writePublicKey(cosign, join(dir, 'app.pub'))
  await pushSigTag(h, 'app/api', (await headManifest(h, 'app/api', '1.4.2')).digest, cosign)
  const u = server.url
  const manifest = join(dir, 'site.yaml')
  await writeFile(
    manifest,
    `apiVersion: ferry/v1
kind: Bundle
metadata: {name: attest-site, version: 2.1.0}
spec:
  platforms: [linux/amd64]
  expiresIn: 30d
  vm:
    - name: azurelinux
      url: ${u}/azurelinux/3.0/azurelinux-3.0-x86_64.vhdx
      checksums: ${u}/azurelinux/3.0/SHA256SUMS
      signature: {url: ${u}/azurelinux/3.0/SHA256SUMS.asc, key: upstream/keys/azurelinux.pub.asc}
  k3s: {version: v1.30.4+k3s1, airgapImages: true, base: ${u}/k3s}
  kubernetes: {version: v1.30.4, binaries: [kubectl], base: ${u}/k8s}
  images:
    - {ref: ${h}/app/api:1.4.2, cosign: {key: app.pub}}
    - ${h}/app/multi:2.0
  files:
    - {url: ${u}/files/site-config.tar.gz, sha256: ${demo.files['site-config.tar.gz']}, dest: files/site-config.tar.gz}
`,
  )
  const past = new Date(Date.now() - 3600_000)
  const keys = join(dir, 'keys')
  const release = await writeKeyPair(keys, 'release', await generateKeyPair({name: 'Release', date: past}))
  const other = await writeKeyPair(keys, 'other', await generateKeyPair({name: 'Other', date: past}))
  const lock = await lockManifest(manifest, {store: new BlobStore(join(dir, 'store'))})
  const lockPath = join(dir, 'site.lock.json')
  await writeLock(lock, lockPath)
  const signer = await fileSigner(release.private)
  const build = (out: string, store: string, extra = {}, other = lock) => buildBundle(other, {store: new BlobStore(store), signers: [signer], outDir: out, ...extra})
  const built = await build(join(dir, 'out'), join(dir, 'store'))
  return {
    dir,
    server,
    registry,
    lock,
    lockPath,
    pub: release.public,
    priv: release.private,
    otherPub: other.public,
    cosign,
    built,
    build,
    close: async () => {
      await server.close()
      await registry.stop()
      await rm(dir, {recursive: true, force: true})
    },
  }
}

/** The bytes of one entry of a bundle (GNU tar reads it, not Ferry). */
export function tarEntry(bundle: string, path: string): Buffer {
  return execFileSync('tar', ['-xOf', bundle, path], {maxBuffer: 256 << 20})
}
