import {spawn} from 'node:child_process'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {FerryError} from '../errors.js'
import {ociArchive} from './oci-archive.js'
import type {SlotManifest} from './state-format.js'

export interface ContainerdTarget {
  /** the containerd socket */
  address: string
  /** k8s.io: the namespace the kubelet's CRI reads */
  namespace: string
  /** the ctr binary */
  ctr: string
  /** only this platform's content (default: the host's) */
  platform?: string
}

const TAIL = 4000

function ctrFailed(target: ContainerdTarget, what: string, code: number | null, stderr: string): FerryError {
  const reason = stderr.trim().split('\n').pop() ?? ''
  return new FerryError('io', 'CONTAINERD_FAILED', `${what} through ${target.address} failed (ctr exit ${code ?? 'by signal'})${reason ? `: ${reason}` : ''}; check that containerd runs`)
}

/** Runs ctr with the archive (or nothing) on stdin; resolves with its stdout. */
function runCtr(target: ContainerdTarget, args: string[], what: string, input?: AsyncIterable<Buffer>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(target.ctr, ['--address', target.address, '--namespace', target.namespace, ...args], {
      stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d) => (stdout = (stdout + d).slice(-1_000_000)))
    child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-TAIL)))
    let feedError: unknown
    const fed = input && child.stdin ? pipeline(Readable.from(input), child.stdin).catch((err) => (feedError = err)) : Promise.resolve()
    child.on('error', (err) => reject(new FerryError('io', 'CTR_MISSING', `cannot run ${target.ctr}: ${err.message}; install containerd's ctr or set containerd.ctr in device.yaml`)))
    child.on('close', async (code) => {
      await fed
      if (code !== 0) return reject(ctrFailed(target, what, code, stderr))
      // ctr finished happily but the archive could not be produced (a blob missing or changed): that error wins.
      const err = feedError as {code?: string} | undefined
      if (err && err.code !== 'EPIPE') return reject(err)
      resolve(stdout)
    })
  })
}

/** Image names present in the namespace. */
export async function listContainerdImages(target: ContainerdTarget): Promise<Set<string>> {
  const out = await runCtr(target, ['images', 'ls', '--quiet'], 'listing images')
  return new Set(out.split('\n').map((l) => l.trim()).filter(Boolean))
}

/**
 * Imports a slot's images into containerd: an OCI archive is built on the fly from the device blob
 * store into `ctr images import -`, each image named by its full reference. Images already there
 * are simply imported again (content is shared); nothing is ever deleted here, so the previous
 * release's images stay for a rollback. Checks afterwards that every reference is listed.
 */
export async function importImagesToContainerd(blobsDir: string, images: SlotManifest['images'], target: ContainerdTarget): Promise<void> {
  if (images.length === 0) return
  const args = ['images', 'import']
  if (target.platform) args.push('--platform', target.platform)
  args.push('-')
  await runCtr(target, args, `importing ${images.length} image(s) into containerd`, ociArchive(blobsDir, images))
  const listed = await listContainerdImages(target)
  const missing = images.filter((i) => !listed.has(i.ref)).map((i) => i.ref)
  if (missing.length > 0) {
    throw new FerryError('io', 'CONTAINERD_IMPORT_INCOMPLETE', `containerd at ${target.address} does not list ${missing.join(', ')} after the import; check its logs`)
  }
}
