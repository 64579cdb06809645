// A loopback upstream for the release job: the demo's upstream (k3s releases, dl.k8s.io, Azure Linux
// with a signed checksum file) at a small scale, plus a k3s channel server that answers with a
// redirect as update.k3s.io does, and whose channel a test moves between runs.
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {startFileServer, type FileServer, type Intercept} from '../../src/demo/file-server.js'
import {channelTarget, makeDemoUpstream, publishK3s} from '../../src/demo/upstream.js'
import {generateKeyPair, writeKeyPair} from '../../src/trust/keys.js'
import {armorSignatures, fileSigner} from '../../src/trust/sign.js'

export const K3S_OLD = 'v1.30.4+k3s1'
export const K3S_NEW = 'v1.30.5+k3s1'
export const K3S_NEWER = 'v1.30.6+k3s1'

export interface ReleaseUpstream {
  root: string
  up: string
  server: FileServer
  manifest: string
  key: string
  pub: string
  store: string
  /** points the `stable` channel at another k3s release */
  move(version: string): void
  /** Azure Linux publishes a patched image: `length` bytes at `offset` change; SHA256SUMS is signed anew */
  patchVm(offset: number, length: number, seed: string): Promise<void>
  /** the channel server drops every connection (true) or answers again (false) */
  channelDown(down: boolean): void
  /** a hook on every request, until set to undefined */
  intercept?: Intercept
  close(): Promise<void>
}

export async function makeReleaseUpstream(scale = 1 / 64): Promise<ReleaseUpstream> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-release-'))
  const up = join(root, 'up')
  const demo = await makeDemoUpstream(up, scale)
  for (const v of [K3S_NEW, K3S_NEWER]) await publishK3s(up, v, scale)
  const redirects: Record<string, string> = {'/channels/stable': channelTarget(K3S_OLD)}
  const fx = {} as ReleaseUpstream
  let channel = K3S_OLD
  let down = false
  const intercept: Intercept = (req, res, ctx) => {
    if (down && ctx.path.startsWith('/channels/')) {
      res.socket?.destroy()
      return true
    }
    return fx.intercept?.(req, res, ctx) ?? false
  }
  const server = await startFileServer({root: up, redirects, intercept})
  const u = server.url
  const manifest = join(root, 'site.yaml')
  await writeFile(
    manifest,
    `apiVersion: ferry/v1
kind: Bundle
metadata: {name: edge-site, version: auto}
spec:
  platforms: [linux/amd64]
  expiresIn: 30d
  vm:
    - name: azurelinux
      url: ${u}/azurelinux/3.0/azurelinux-3.0-x86_64.vhdx
      checksums: ${u}/azurelinux/3.0/SHA256SUMS
      signature: {url: ${u}/azurelinux/3.0/SHA256SUMS.asc, key: ${demo.vmKey}}
  k3s:
    channel: stable
    channelUrl: ${u}/channels
    base: ${u}/k3s
  kubernetes:
    version: v1.30.4
    binaries: [kubectl, kubelet]
    base: ${u}/k8s
  files:
    - url: ${u}/files/site-config.tar.gz
      sha256: ${demo.files['site-config.tar.gz']}
`,
  )
  const keys = join(root, 'keys')
  await mkdir(keys)
  const written = await writeKeyPair(keys, 'release', await generateKeyPair({name: 'Release test', date: new Date(Date.now() - 60_000)}))
  return Object.assign(fx, {
    root,
    up,
    server,
    manifest,
    key: written.private,
    pub: written.public,
    store: join(root, 'store'),
    move: (version: string) => {
      channel = version
      if (!down) redirects['/channels/stable'] = channelTarget(version)
    },
    channelDown: (value: boolean) => {
      down = value
      if (down) delete redirects['/channels/stable']
      else redirects['/channels/stable'] = channelTarget(channel)
    },
    patchVm: async (offset: number, length: number, seed: string) => {
      const vmDir = join(up, 'azurelinux', '3.0')
      const file = join(vmDir, 'azurelinux-3.0-x86_64.vhdx')
      const bytes = await readFile(file)
      for (let i = 0; i < length; i += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(bytes, offset + i, 0, Math.min(32, length - i))
      await writeFile(file, bytes)
      const sums = Buffer.from(`${createHash('sha256').update(bytes).digest('hex')} *azurelinux-3.0-x86_64.vhdx\r\n`)
      await writeFile(join(vmDir, 'SHA256SUMS'), sums)
      const signer = await fileSigner(join(up, 'keys', 'azurelinux.key.asc'))
      await writeFile(join(vmDir, 'SHA256SUMS.asc'), armorSignatures([await signer.sign(sums, new Date())]))
    },
    close: () => server.close(),
  })
}
