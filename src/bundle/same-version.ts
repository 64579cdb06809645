import {stat} from 'node:fs/promises'
import {usageError} from '../errors.js'
import {sha256Of} from '../store/hashing.js'
import {readFileChunks} from '../store/file-chunks.js'
import {isBundleDocument} from './documents.js'
import {parseBundleJson} from './format.js'
import {readBundleHead} from './inspect.js'

/**
 * Whether two bundle.json describe the same release: equal but for `created` and `expires`, which a
 * build from a manifest (not a lock) takes from the time it resolved. Everything that reaches a device
 * (artifacts and their digests, health checks, platforms, rotation, delta base) must be equal; the SBOM and
 * provenance, made from those and the times, are not compared.
 */
export function sameContent(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true
  const content = (bytes: Buffer) => {
    const {created: _c, expires: _e, artifacts, ...rest} = parseBundleJson(bytes)
    // the SBOM and provenance carry the times and the lock's digest: they differ with them
    return JSON.stringify({...rest, artifacts: artifacts.filter((a) => !isBundleDocument(a))})
  }
  try {
    return content(a) === content(b)
  } catch {
    return false
  }
}

/**
 * Refuses to replace `target` when it holds another bundle of the same name and version: one version is
 * one content, or a device could take either for the other. The same content (see sameContent) is fine,
 * and so is a file that is no readable bundle at all (nothing a device could run).
 */
export async function refuseOtherContent(target: string, bundleJson: Buffer, what: string): Promise<void> {
  const info = await stat(target).catch(() => undefined)
  if (!info?.isFile()) return
  const head = await readBundleHead({label: target, size: info.size, open: () => readFileChunks(target)}).catch(() => undefined)
  if (!head || sameContent(head.bundleJson, bundleJson)) return
  throw usageError(
    'VERSION_EXISTS',
    `${target} already holds ${what} with other content (bundle.json ${sha256Of(head.bundleJson)}; this build's is ${sha256Of(bundleJson)}); give the change a new version, or another --out`,
  )
}
