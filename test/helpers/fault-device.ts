// A device for fault sweeps: two small releases (the k3s stand-in, kubectl, a site file and an airgap archive
// that K3s's images folder receives), a device committed on the first, and the checks every fault point must
// pass: the device runs the old release or the new one, whole (its slot's files, the archive K3s scans), with
// nothing misleading in status and no temp file anywhere.
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {cp, readdir, readFile, readlink} from 'node:fs/promises'
import {join} from 'node:path'
import {devicePaths, type DevicePaths} from '../../src/device/paths.js'
import {type DeviceStatus, deviceStatus} from '../../src/device/status.js'
import {ferry} from './cli.js'
import {makeBundle, makeDevice, makeKey, type MadeBundle, type TestKey} from './device.js'
import {nodesReady, standInArtifacts, writeDeviceConfig} from './stand-ins.js'

export const IMAGES_DIR = 'var/lib/rancher/k3s/agent/images'
const ARCHIVE = 'k3s-airgap-images-amd64.tar.zst'

export interface SweepDevice {
  key: TestKey
  v1: MadeBundle
  v2: MadeBundle
  /** a device committed on 1.0.0 */
  committed: string
  /** the same with 2.0.0 imported (staged) */
  staged: string
  /** the airgap archive's sha256 per version */
  archives: Record<string, string>
}

function airgap(version: string) {
  return {name: `k3s/${ARCHIVE}`, kind: 'k3s' as const, dest: `images/${ARCHIVE}`, content: {size: 96 * 1024, seed: `airgap-${version}`}}
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function must(args: string[]): Promise<void> {
  const r = await ferry(args)
  if (r.code !== 0) throw new Error(`${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`)
}

/** Keys, both releases and the two template devices under `dir`. */
export async function makeSweepDevice(dir: string): Promise<SweepDevice> {
  const key = await makeKey(dir, 'release')
  const release = (version: string) => makeBundle({dir, version, signers: [key], artifacts: [...standInArtifacts(version, 'healthy'), airgap(version)], health: [nodesReady(10)]})
  const v1 = await release('1.0.0')
  const v2 = await release('2.0.0')
  const committed = join(dir, 'template-committed')
  await makeDevice(committed, {trust: [key]})
  await writeDeviceConfig(committed, `k3s:\n  imagesDir: /${IMAGES_DIR}\n`)
  await must(['device', 'import', v1.path, '--root', committed])
  await must(['device', 'apply', '--root', committed])
  const staged = join(dir, 'template-staged')
  await cp(committed, staged, {recursive: true, verbatimSymlinks: true})
  await must(['device', 'import', v2.path, '--root', staged])
  const archives: Record<string, string> = {}
  for (const b of [v1, v2]) archives[b.manifest.version] = b.manifest.artifacts.find((a) => a.name === `k3s/${ARCHIVE}`)!.digest.replace('sha256:', '')
  return {key, v1, v2, committed, staged, archives}
}

/** A fresh copy of a template device. */
export async function copyDevice(template: string, root: string): Promise<DevicePaths> {
  await cp(template, root, {recursive: true, verbatimSymlinks: true})
  return devicePaths(root)
}

/** Where faults are injected on a device: Ferry's own folder and K3s's agent folder (its images and their staging). */
export const devicePrefixes = (root: string) => [devicePaths(root).base, join(root, 'var/lib/rancher')]

/** Files a run left half-made: temp files anywhere under the prefixes, anything in tmp/ or the images' staging folder. */
export async function leftovers(root: string): Promise<string[]> {
  const found: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, {withFileTypes: true}).catch(() => [])) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (/\.tmp$|\.partial$/.test(e.name) || p.includes('/var/lib/ferry/tmp/') || p.includes('/.ferry-staging/')) found.push(p.slice(root.length))
    }
  }
  for (const p of devicePrefixes(root)) await walk(p)
  return found
}

/**
 * What is wrong with the device now (empty when nothing): it runs 1.0.0 or 2.0.0 whole — `current` names the
 * slot the journal names, that slot holds the release's files, K3s's folder its airgap archive — no lock is
 * left, no temp file, and status names no import or apply in flight.
 */
export async function deviceProblems(sd: SweepDevice, root: string, opts: {interruptedOk?: boolean} = {}): Promise<{problems: string[]; status?: DeviceStatus}> {
  const paths = devicePaths(root)
  const problems: string[] = []
  let status: DeviceStatus
  try {
    status = await deviceStatus(paths)
  } catch (err) {
    return {problems: [`status fails: ${(err as Error).message}`]}
  }
  const version = status.current?.version
  if (version !== '1.0.0' && version !== '2.0.0') problems.push(`runs ${version ?? 'nothing'}`)
  // on a disk that fails every write the journal cannot be put back, and a recover that failed leaves what it
  // was to finish: status must then name what stopped half-way, and a lock left by a dead process is broken
  const inFlight = ['verifying', 'switching', 'trial', 'rolling-back'].includes(status.state)
  const halfWay = opts.interruptedOk && status.interrupted !== null && status.next.includes('device recover')
  if (inFlight && !halfWay) problems.push(`state ${status.state} (interrupted: ${JSON.stringify(status.interrupted)})`)
  if (!inFlight && status.interrupted) problems.push(`status shows ${status.interrupted.operation} interrupted at ${status.interrupted.step}`)
  if (status.running) problems.push(`status shows process ${status.running.pid} running`)
  if (existsSync(paths.lock) && !(halfWay && !status.running)) problems.push('lock left behind')
  if (status.current) {
    const link = await readlink(paths.current).catch(() => '(none)')
    if (link !== `slots/${status.current.slot}`) problems.push(`current -> ${link}, the journal says slot ${status.current.slot}`)
    if (status.current.k3s === null && status.current.importedAt === null) problems.push(`slot ${status.current.slot} does not hold ${version}`)
    const k3s = await readFile(join(paths.slots, status.current.slot, 'bin/k3s'), 'utf8').catch(() => '')
    if (!k3s.includes(`k3s ${version}`)) problems.push(`slot ${status.current.slot}'s bin/k3s is not ${version}'s`)
    const site = await readFile(join(paths.slots, status.current.slot, 'files/site.txt'), 'utf8').catch(() => '')
    if (site !== `site config for ${version}\n`) problems.push(`slot ${status.current.slot}'s files/site.txt is not ${version}'s`)
    const archive = await readFile(join(root, IMAGES_DIR, ARCHIVE)).catch(() => undefined)
    if (!archive || sha(archive) !== sd.archives[version!]) problems.push(`K3s's images folder does not hold ${version}'s airgap archive`)
  }
  if (status.staged && status.staged.importedAt === null) problems.push(`staged ${status.staged.version} is not in its slot`)
  const left = await leftovers(root)
  if (left.length) problems.push(`left ${left.join(', ')}`)
  return {problems, status}
}
