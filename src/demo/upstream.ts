import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {generateKeyPair, writeKeyPair} from '../trust/keys.js'
import {armorSignatures, fileSigner} from '../trust/sign.js'

/** Versions the demo upstream publishes; manifests/demo.yaml asks for these. */
export const DEMO_K3S_VERSION = 'v1.30.4+k3s1'
export const DEMO_KUBERNETES_VERSION = 'v1.30.4'
const MiB = 1 << 20

/** Deterministic bytes (sha256 in counter mode) streamed to a file, so fixtures are the same on every machine. */
async function writeStableBytes(path: string, seed: string, size: number): Promise<string> {
  await mkdir(dirname(path), {recursive: true})
  const whole = createHash('sha256')
  async function* chunks() {
    let left = size
    let counter = 0
    const block = Buffer.alloc(MiB)
    while (left > 0) {
      const n = Math.min(left, MiB)
      for (let off = 0; off < n; off += 32) {
        createHash('sha256').update(`${seed}:${counter++}`).digest().copy(block, off)
      }
      const out = Buffer.from(block.subarray(0, n))
      whole.update(out)
      left -= n
      yield out
    }
  }
  await pipeline(chunks(), createWriteStream(path))
  return whole.digest('hex')
}

/**
 * Publishes one k3s release as GitHub does, under `<root>/k3s/<version>`: the binary, the air-gap
 * images and `sha256sum-amd64.txt` listing both. Each version has bytes of its own.
 */
export async function publishK3s(root: string, version: string, scale = 1): Promise<void> {
  const size = (mib: number) => Math.max(1, Math.round(mib * scale * MiB))
  const seed = version === DEMO_K3S_VERSION ? '' : `${version}:`
  const dir = join(root, 'k3s', version)
  const k3s = await writeStableBytes(join(dir, 'k3s'), `${seed}k3s-amd64`, size(12))
  const airgap = await writeStableBytes(join(dir, 'k3s-airgap-images-amd64.tar.zst'), `${seed}k3s-airgap-amd64`, size(24))
  await writeFile(join(dir, 'sha256sum-amd64.txt'), `${k3s}  k3s\n${airgap}  k3s-airgap-images-amd64.tar.zst\n`)
}

/** Where a k3s channel server (update.k3s.io) redirects `<channels>/<name>` to for `version`. */
export function channelTarget(version: string): string {
  return `/k3s-io/k3s/releases/tag/${encodeURIComponent(version)}`
}

export interface DemoUpstream {
  root: string
  /** public key that signs the Azure Linux checksum file */
  vmKey: string
  /** sha256 of the site config file (fixed by its seed) */
  files: Record<string, string>
}

/**
 * Lays out, under `root`, what the real upstreams publish, with small generated payloads:
 * - `k3s/<version %2B>/k3s`, `k3s-airgap-images-amd64.tar.zst`, `sha256sum-amd64.txt` (GitHub releases)
 * - `k8s/release/<version>/bin/linux/amd64/<bin>` and `<bin>.sha256` (dl.k8s.io)
 * - `azurelinux/3.0/…vhdx`, `SHA256SUMS` (CRLF) and its detached signature `SHA256SUMS.asc`
 * - `files/site-config.tar.gz`
 * Anything already under `root` is replaced.
 */
export async function makeDemoUpstream(root: string, scale = 1): Promise<DemoUpstream> {
  await rm(root, {recursive: true, force: true})
  const size = (mib: number) => Math.max(1, Math.round(mib * scale * MiB))
  await publishK3s(root, DEMO_K3S_VERSION, scale)

  const binDir = join(root, 'k8s', 'release', DEMO_KUBERNETES_VERSION, 'bin', 'linux', 'amd64')
  for (const bin of ['kubectl', 'kubelet']) {
    const digest = await writeStableBytes(join(binDir, bin), `k8s-${bin}`, size(8))
    await writeFile(join(binDir, `${bin}.sha256`), digest)
  }

  const vmDir = join(root, 'azurelinux', '3.0')
  const vhdx = await writeStableBytes(join(vmDir, 'azurelinux-3.0-x86_64.vhdx'), 'azurelinux-vhdx', size(32))
  const sums = Buffer.from(`${vhdx} *azurelinux-3.0-x86_64.vhdx\r\n`)
  await writeFile(join(vmDir, 'SHA256SUMS'), sums)
  const keyDir = join(root, 'keys')
  await mkdir(keyDir, {recursive: true})
  const pair = await generateKeyPair({name: 'Demo Azure Linux signing', date: new Date(Date.now() - 60_000)})
  const {public: vmKey, private: vmPrivate} = await writeKeyPair(keyDir, 'azurelinux', pair)
  const signer = await fileSigner(vmPrivate)
  await writeFile(join(vmDir, 'SHA256SUMS.asc'), armorSignatures([await signer.sign(sums, new Date())]))

  const siteConfig = await writeStableBytes(join(root, 'files', 'site-config.tar.gz'), 'site-config', size(1))
  return {root, vmKey, files: {'site-config.tar.gz': siteConfig}}
}
