// Reading a lock file, and what `bundle build` takes: light on purpose, so that a build from a
// lock does not load the manifest parser and every upstream's resolver (see loadBuildInput).
import {readdir, readFile, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {usageError} from '../errors.js'
import type {LockOptions} from './lock-options.js'
import {LockFile} from './lock-format.js'

/** A manifest is a few KiB; anything far larger is the wrong file. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** Reads a small text file given on the command line (manifest or lock), refusing huge or missing ones. */
export async function readSmallText(path: string, what: string): Promise<string> {
  try {
    const info = await stat(path)
    if (!info.isFile()) throw usageError('NOT_A_FILE', `${path}: not a file (expected a ${what}); give the file's path`)
    if (info.size > MAX_MANIFEST_BYTES) throw usageError('FILE_TOO_LARGE', `${path}: ${info.size} bytes is too large for a ${what}; is it the right file? give the ${what} itself`)
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw usageError('NOT_FOUND', `${path}: no such file (expected a ${what})${await lockHint(path)}`)
    throw err
  }
}

/** For a missing `manifest.lock.json`: the locks that do lie there, now that each is named after its manifest. */
async function lockHint(path: string): Promise<string> {
  if (basename(path) !== 'manifest.lock.json') return ''
  const locks = (await readdir(dirname(path)).catch(() => [] as string[])).filter((n) => n.endsWith('.lock.json')).sort()
  const there = locks.length ? `; there: ${locks.map((n) => join(dirname(path), n)).join(', ')}` : ''
  return `; a lock is named after its manifest (site.yaml → site.lock.json)${there}`
}

/** `spec.vm[0].url` */
export function fieldName(path: Array<string | number>): string {
  return path.map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : i === 0 ? seg : `.${seg}`)).join('')
}

/** Reads and validates a lock file; errors name the file and the field. */
export async function readLock(path: string): Promise<LockFile> {
  return parseLock(await readSmallText(path, 'lock file'), path)
}

function parseLock(text: string, path: string): LockFile {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    if (/^\s*apiVersion:\s*["']?ferry\//m.test(text)) {
      throw usageError('IS_A_MANIFEST', `${path} is a manifest, not a lock: make its lock with "ferry manifest lock ${path}" and give the .lock.json it writes`)
    }
    throw usageError('LOCK_INVALID', `${path}: not a lock file: ${(err as Error).message}; re-create it with "ferry manifest lock MANIFEST"`)
  }
  const parsed = LockFile.safeParse(data)
  if (parsed.success) return parsed.data
  const lines = parsed.error.issues.slice(0, 10).map((i) => {
    const at = fieldName(i.path.filter((p): p is string | number => typeof p !== 'symbol'))
    return `${path}: ${at || '(top level)'}: ${i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message}`
  })
  throw usageError('LOCK_INVALID', `${lines.join('\n')}\n(re-create it with: ferry manifest lock MANIFEST)`)
}

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
