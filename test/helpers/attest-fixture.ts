// A bundle of every kind of artifact for the SBOM and provenance tests: a loopback upstream (VM
// image with a PGP-signed checksum list, k3s, Kubernetes, a file), a loopback registry with a
// cosign-signed image and a multi-arch index, locked once and built into `out/`.
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
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
import {headManifest, makeKey, pae, pushBlob, pushManifest, pushSigTag, signBytes, writePublicKey, type TestKey} from './cosign.js'
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
  /** the SBOM documents pushed as referrers of the two images */
  imageSboms: Record<'api' | 'multi' | 'attested' | 'otherKey', {digest: string; bytes: Buffer; manifest: string}>
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
  // SBOMs the registry holds for the images, as `oras attach` writes them: CycloneDX for api, SPDX for the index
  const imageSboms = {
    api: await pushSbomReferrer(h, 'app/api', await headManifest(h, 'app/api', '1.4.2'), 'application/vnd.cyclonedx+json', {bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [{type: 'library', name: 'libapi', version: '1.4.2'}]}),
    multi: await pushSbomReferrer(h, 'app/multi', await headManifest(h, 'app/multi', '2.0'), 'application/spdx+json', {spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: 'multi', packages: [{SPDXID: 'SPDXRef-multi', name: 'multi', versionInfo: '2.0'}]}),
  }
  // and as `cosign attest --type cyclonedx` writes them: DSSE envelopes under api's .att tag, one
  // signed by the key that signs the image, one by another key
  const [attested, otherKey] = await pushSbomAttestations(h, 'app/api', (await headManifest(h, 'app/api', '1.4.2')).digest, [cosign, makeKey('ec')])
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
    imageSboms: {...imageSboms, attested, otherKey},
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

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

/** An SBOM as an OCI 1.1 referrer of `image` (artifactType, empty config, one layer), listed in the `sha256-<hex>` tag index. */
async function pushSbomReferrer(host: string, repo: string, image: {digest: string; size: number; mediaType: string}, type: string, sbom: unknown): Promise<{digest: string; bytes: Buffer; manifest: string}> {
  const bytes = Buffer.from(JSON.stringify(sbom))
  const layer = await pushBlob(host, repo, bytes)
  const empty = await pushBlob(host, repo, Buffer.from('{}'))
  const manifest = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: type, config: {mediaType: 'application/vnd.oci.empty.v1+json', ...empty}, layers: [{mediaType: type, ...layer}], subject: image}))
  const digest = await pushManifest(host, repo, `sha256:${createHash('sha256').update(manifest).digest('hex')}`, manifest, OCI_MANIFEST)
  const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{mediaType: OCI_MANIFEST, digest, size: manifest.length, artifactType: type}]}))
  await pushManifest(host, repo, image.digest.replace(':', '-'), index, OCI_INDEX)
  return {digest: layer.digest, bytes, manifest: digest}
}

/** cosign attestations of CycloneDX predicates: the `sha256-<hex>.att` manifest, one DSSE envelope layer per key. */
async function pushSbomAttestations(host: string, repo: string, digest: string, keys: TestKey[]): Promise<Array<{digest: string; bytes: Buffer; manifest: string}>> {
  const type = 'application/vnd.in-toto+json'
  const layers = []
  for (const [i, key] of keys.entries()) {
    const statement = Buffer.from(JSON.stringify({_type: 'https://in-toto.io/Statement/v1', subject: [{name: `${host}/${repo}`, digest: {sha256: digest.slice(7)}}], predicateType: 'https://cyclonedx.org/bom', predicate: {bomFormat: 'CycloneDX', specVersion: '1.6', version: i + 1}}))
    const envelope = Buffer.from(JSON.stringify({payloadType: type, payload: statement.toString('base64'), signatures: [{keyid: '', sig: signBytes(key, pae(type, statement)).toString('base64')}]}))
    layers.push({envelope, desc: await pushBlob(host, repo, envelope)})
  }
  const config = await pushBlob(host, repo, Buffer.from(JSON.stringify({architecture: '', os: '', rootfs: {type: 'layers', diff_ids: layers.map((l) => l.desc.digest)}, config: {}})))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
      layers: layers.map((l) => ({mediaType: 'application/vnd.dsse.envelope.v1+json', ...l.desc, annotations: {'dev.cosignproject.cosign/signature': '', predicateType: 'https://cyclonedx.org/bom'}})),
    }),
  )
  const at = await pushManifest(host, repo, `${digest.replace(':', '-')}.att`, manifest, OCI_MANIFEST)
  return layers.map((l) => ({digest: l.desc.digest, bytes: l.envelope, manifest: at}))
}
