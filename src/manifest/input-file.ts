// The small text files given on the command line (manifests, locks), and how their fields are named
// in messages. Below both the manifest loader and the lock reader.
import {readdir, readFile, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {usageError} from '../errors.js'

/** A manifest is a few KiB; anything far larger is the wrong file. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** Reads a small text file given on the command line (manifest or lock), refusing huge or missing ones. */
export async function readSmallText(path: string, what: string): Promise<string> {
  try {
    const info = await stat(path)
    if (!info.isFile()) throw usageError('NOT_A_FILE', `${path}: not a file (expected a ${what})`)
    if (info.size > MAX_MANIFEST_BYTES) throw usageError('FILE_TOO_LARGE', `${path}: ${info.size} bytes is too large for a ${what}`)
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
