// Reading a lock file: light on purpose, so that a build from a lock does not load the manifest
// parser and every upstream's resolver (see build-input.ts).
import {usageError} from '../errors.js'
import {fieldName, readSmallText} from './input-file.js'
import {LockFile} from './lock-format.js'

/** Reads and validates a lock file; errors name the file and the field. */
export async function readLock(path: string): Promise<LockFile> {
  return parseLock(await readSmallText(path, 'lock file'), path)
}

/** Validates the text of a lock file read from `path`. */
export function parseLock(text: string, path: string): LockFile {
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
