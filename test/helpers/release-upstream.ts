// A loopback upstream for the release job: the demo's upstream (k3s releases, dl.k8s.io, Azure Linux
// with a signed checksum file) at a small scale, plus a k3s channel server that answers with a
// redirect as update.k3s.io does, and whose channel a test moves between runs.
import {mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {startFileServer, type FileServer, type Intercept} from '../../src/demo/file-server.js'
import {channelTarget, makeDemoUpstream, publishK3s} from '../../src/demo/upstream.js'
import {generateKeyPair, writeKeyPair} from '../../src/trust/keys.js'

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
  const server = await startFileServer({root: up, redirects, intercept: (req, res, ctx) => fx.intercept?.(req, res, ctx) ?? false})
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
    move: (version: string) => void (redirects['/channels/stable'] = channelTarget(version)),
    close: () => server.close(),
  })
}
