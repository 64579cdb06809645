import {mkdir, rm, writeFile} from 'node:fs/promises'
import {join, relative} from 'node:path'
import {buildBundle} from '../bundle/build.js'
import {applyStaged} from '../device/apply.js'
import {importBundle} from '../device/import.js'
import {devicePaths} from '../device/paths.js'
import {deviceStatus} from '../device/status.js'
import {addTrustedKey} from '../device/trust-store.js'
import {HealthCheck, type LockFile} from '../manifest/lock-format.js'
import type {BlobStore} from '../store/blob-store.js'
import {fileSigner} from '../trust/sign.js'
import {FerryError} from '../errors.js'
import type {ProgressListener} from '../ui/progress.js'

export interface DemoDeviceInput {
  /** the stick folder (or bundle file) holding the demo's first bundle */
  stick: string
  lock: LockFile
  store: BlobStore
  publicKey: string
  privateKey: string
  /** the demo's work folder; the sandbox device root is <work>/device */
  work: string
  outDir: string
  say: (line: string) => void
  onProgress?: ProgressListener
}

const rel = (path: string) => relative(process.cwd(), path) || '.'

/**
 * The quick start's device side, on a sandbox root: trust the release key, import from the stick, apply
 * (its health check passes: committed), then a 1.0.1 whose health check fails: the device rolls itself
 * back, and its status says so.
 */
export async function demoDeviceSteps(input: DemoDeviceInput): Promise<{root: string; state: string; current?: string}> {
  const {say} = input
  const root = join(input.work, 'device')
  await rm(root, {recursive: true, force: true})
  const paths = devicePaths(root)
  // Images go to K3s's airgap folder (under the sandbox root): no containerd needed for the demo.
  await mkdir(join(root, 'etc', 'ferry'), {recursive: true})
  await writeFile(paths.config, 'k3s:\n  imagesDir: /var/lib/rancher/k3s/agent/images\n')
  await addTrustedKey(paths, input.publicKey)
  say(`8. sandbox device at ${rel(root)}: trusts ${rel(input.publicKey)} (ferry device trust add … --root ${rel(root)})`)

  const first = await importBundle(paths, input.stick, {onProgress: input.onProgress})
  say(`9. imported ${first.name} ${first.version} from the stick into slot ${first.slot}, every byte verified on the way in`)
  const applied = await applyStaged(paths)
  const checks = applied.checks.map((c) => `${c.name} ok`).join(', ')
  say(`10. applied it: switched, health checks passed (${checks}), committed; floor ${applied.commit?.floor}`)

  // A second release whose health check fails: the device must come back to 1.0.0 by itself.
  const failing = HealthCheck.parse({name: 'api-ready', run: 'echo "api: connection refused on 127.0.0.1:6443" >&2; exit 1', timeout: 10})
  const lock: LockFile = {...input.lock, version: bumpPatch(input.lock.version), health: [...input.lock.health, failing]}
  const built = await buildBundle(lock, {store: input.store, signers: [await fileSigner(input.privateKey)], outDir: input.outDir, onProgress: input.onProgress})
  await importBundle(paths, built.path, {onProgress: input.onProgress})
  say(`11. built and imported ${lock.name} ${lock.version}, whose health check "api-ready" fails`)
  try {
    await applyStaged(paths)
    throw new Error(`the demo's failing release ${lock.version} was committed; its health check should have failed`)
  } catch (err) {
    if (!(err instanceof FerryError) || err.exit !== 7) throw err
    say(`12. applied it: the trial failed and the device rolled itself back (exit 7):`)
    say(`      ${err.message}`)
  }

  const status = await deviceStatus(paths)
  const show = (r: typeof status.current) => (r ? `${r.name} ${r.version} (slot ${r.slot})` : 'none')
  say(`13. ferry device status --root ${rel(root)}`)
  say(`      state:      ${status.state}`)
  say(`      current:    ${show(status.current)}`)
  say(`      floor:      ${status.floor ?? 'none'}`)
  say(`      last error: ${status.lastError ?? 'none'}`)
  return {root, state: status.state, ...(status.current ? {current: status.current.version} : {})}
}

function bumpPatch(version: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)(.*)$/.exec(version)
  return m ? `${m[1]}.${m[2]}.${Number(m[3]) + 1}` : `${version}-next`
}
