import {existsSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import {buildBundle} from '../bundle/build.js'
import {openBundleInput} from '../bundle/input.js'
import {verifyBundleStream} from '../bundle/verify.js'
import {lockManifest, writeLock} from '../manifest/lock.js'
import {BlobStore} from '../store/blob-store.js'
import {generateKeyPair, readPublicKeys, writeKeyPair} from '../trust/keys.js'
import {fileSigner} from '../trust/sign.js'
import {formatBytes} from '../format.js'
import type {ProgressListener} from '../ui/progress.js'
import {startFileServer} from './file-server.js'
import {demoDeviceSteps} from './steps-device.js'
import {demoUsbStep} from './steps-usb.js'
import {makeDemoImages} from './steps-images.js'
import {demoReleaseSteps, type DemoReleaseResult} from './steps-release.js'
import {channelTarget, DEMO_K3S_VERSION, makeDemoUpstream} from './upstream.js'

/** The package's own folder: the demo manifest ships with it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Sets environment variables; the function returned puts back what was there. */
function setEnv(vars: Record<string, string>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

export interface DemoOptions {
  /** work folder for the upstream fixtures, keys, store and lock (default <package>/demo) */
  workDir?: string
  /** where the bundle goes (default <package>/bundles) */
  outDir?: string
  say?: (line: string) => void
  onProgress?: ProgressListener
}

export interface DemoResult {
  bundle: string
  sha256: string
  size: number
  lock: string
  publicKey: string
  upstream: string
  artifacts: number
  /** the monthly job's two months: release folder, versions, the delta and the changelog */
  release: DemoReleaseResult
}

/**
 * The quick start, end to end on nothing but Node: serve a loopback upstream laid
 * out like k3s's releases, dl.k8s.io and Azure Linux; lock manifests/demo.yaml
 * against it; build a signed bundle; verify it as a device would.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const say = options.say ?? (() => {})
  const work = options.workDir ?? join(PACKAGE_ROOT, 'demo')
  const outDir = options.outDir ?? join(PACKAGE_ROOT, 'bundles')
  const upstreamDir = join(work, 'upstream')
  await mkdir(work, {recursive: true})

  say(`1. generating upstream fixtures in ${relative(process.cwd(), upstreamDir) || '.'}`)
  const upstream = await makeDemoUpstream(upstreamDir)
  const imagesDir = await makeDemoImages(join(work, 'images'))
  // a k3s channel server as update.k3s.io: <url>/channels/stable redirects to the release it points at
  const redirects: Record<string, string> = {'/channels/stable': channelTarget(DEMO_K3S_VERSION)}
  const server = await startFileServer({root: upstreamDir, redirects})
  // manifests/demo.yaml reads where its upstreams are from these variables.
  const restoreEnv = setEnv({FERRY_DEMO_UPSTREAM: server.url, FERRY_DEMO_UPSTREAM_KEY: upstream.vmKey, FERRY_DEMO_IMAGES: imagesDir})
  try {
    say(`   serving them at ${server.url} (k3s releases, dl.k8s.io, Azure Linux with a signed SHA256SUMS)`)
    const keyDir = join(work, 'keys')
    await mkdir(keyDir, {recursive: true})
    const keyFiles = {public: join(keyDir, 'release.pub.asc'), private: join(keyDir, 'release.key.asc')}
    if (existsSync(keyFiles.private) && existsSync(keyFiles.public)) {
      say(`2. release key: reusing ${relative(process.cwd(), keyFiles.public)}`)
    } else {
      const pair = await generateKeyPair({name: 'Demo release signing', date: new Date(Date.now() - 60_000)})
      await writeKeyPair(keyDir, 'release', pair)
      say(`2. release key ${pair.fingerprint} written to ${relative(process.cwd(), keyFiles.public)}`)
    }

    const store = new BlobStore(join(work, 'store'))
    const manifestPath = join(PACKAGE_ROOT, 'manifests', 'demo.yaml')
    const lock = await lockManifest(manifestPath, {store, onProgress: options.onProgress})
    const lockPath = join(work, 'demo.lock.json')
    await writeLock(lock, lockPath)
    say(`3. locked manifests/demo.yaml: ${lock.artifacts.length} artifacts, each checked against its upstream checksum → ${relative(process.cwd(), lockPath)}`)

    const built = await buildBundle(lock, {store, signers: [await fileSigner(keyFiles.private)], outDir, onProgress: options.onProgress})
    say(`4. built ${relative(process.cwd(), built.path)} (${formatBytes(built.size)}, sha256 ${built.sha256.slice(0, 16)}…)`)

    const input = await openBundleInput(built.path)
    const report = await verifyBundleStream(input.open(), {keys: await readPublicKeys([keyFiles.public]), totalSize: input.size, onProgress: options.onProgress})
    say(`5. verified it: signature by ${report.signers.map((s) => s.fingerprint).join(', ')}, ${report.blobs} blobs, every byte hashed`)
    const usb = await demoUsbStep({bundle: built.path, size: built.size, name: lock.name, version: lock.version, publicKey: keyFiles.public, work, say, onProgress: options.onProgress})
    const device = await demoDeviceSteps({stick: usb.stick, lock, store, publicKey: keyFiles.public, privateKey: keyFiles.private, work, outDir, say, onProgress: options.onProgress})
    const release = await demoReleaseSteps({
      upstreamDir,
      imagesDir,
      moveChannel: (version) => void (redirects['/channels/stable'] = channelTarget(version)),
      manifest: join(PACKAGE_ROOT, 'manifests', 'demo-release.yaml'),
      privateKey: keyFiles.private,
      store,
      work,
      say,
      onProgress: options.onProgress,
    })
    say(``)
    say(`Try: ferry bundle inspect ${relative(process.cwd(), built.path)}`)
    say(`     tar -tvf ${relative(process.cwd(), built.path)}`)
    say(`     ferry bundle verify ${relative(process.cwd(), built.path)} --key ${relative(process.cwd(), keyFiles.public)}`)
    say(`     ferry usb list ${relative(process.cwd(), usb.stick)}`)
    say(`     ferry device status --root ${relative(process.cwd(), device.root)}`)
    say(`     ferry release list ${relative(process.cwd(), release.dir)}`)
    say(`     cat ${relative(process.cwd(), release.changelog)}`)
    return {
      bundle: built.path,
      sha256: built.sha256,
      size: built.size,
      lock: lockPath,
      publicKey: keyFiles.public,
      upstream: server.url,
      artifacts: lock.artifacts.length,
      release,
    }
  } finally {
    restoreEnv()
    await server.close()
  }
}
