// What `bundle build` takes, a manifest or a lock: above both, so that a build from a lock loads
// neither the manifest parser nor any upstream's resolver.
import type {LockOptions} from './lock-options.js'
import type {LockFile} from './lock-format.js'
import {readSmallText} from './input-file.js'
import {parseLock} from './lock-read.js'

/**
 * What `bundle build` takes: a lock file (JSON, schema ferry.lock/v1) is read as it
 * is; a manifest (YAML) is locked now.
 */
export async function loadBuildInput(path: string, opts: LockOptions = {}): Promise<LockFile> {
  const text = await readSmallText(path, 'manifest or lock file')
  if (/^\s*\{/.test(text)) {
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch {
      data = undefined
    }
    const isLock = typeof data === 'object' && data !== null && 'schema' in data && !('apiVersion' in data)
    if (isLock) return parseLock(text, path)
  }
  const {lockManifest} = await import('./lock.js')
  return lockManifest(path, opts)
}
