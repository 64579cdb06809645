import {readdir, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {usageError} from '../errors.js'
import {PARTS_SUFFIX} from './parts-format.js'

export interface Located {
  kind: 'parts' | 'file'
  path: string
}

/**
 * Finds the bundle a user means by a path that is not a plain bundle file: a
 * `*.parts.json`, a folder (a mounted stick) holding exactly one bundle, or
 * `DIR/<bundle file name>` (with or without `.ferry.tar`) whose parts are in DIR.
 */
export async function locateBundle(path: string): Promise<Located | undefined> {
  const info = await stat(path).catch(() => undefined)
  if (info?.isFile()) return path.endsWith(PARTS_SUFFIX) ? {kind: 'parts', path} : undefined
  if (info?.isDirectory()) {
    const names = await readdir(path)
    const described = names.filter((n) => n.endsWith(PARTS_SUFFIX) && !n.startsWith('.'))
    const files = names.filter((n) => n.endsWith('.ferry.tar') && !n.startsWith('.'))
    const all = [...described.map((n) => n.slice(0, -PARTS_SUFFIX.length)), ...files]
    if (all.length > 1) throw usageError('SEVERAL_BUNDLES', `${path} holds several bundles (${all.join(', ')}): name one, e.g. ${join(path, all[0])}`)
    if (described.length === 1) return {kind: 'parts', path: join(path, described[0])}
    if (files.length === 1) return {kind: 'file', path: join(path, files[0])}
    throw usageError('NOT_FOUND', `${path} holds no bundle (no .ferry.tar and no .parts.json); give the folder or file holding it, or write one there with "ferry usb write"`)
  }
  if (info) return undefined
  const name = basename(path)
  for (const candidate of [`${name}${PARTS_SUFFIX}`, `${name}.ferry.tar${PARTS_SUFFIX}`]) {
    const p = join(dirname(path), candidate)
    if ((await stat(p).catch(() => undefined))?.isFile()) return {kind: 'parts', path: p}
  }
  return undefined
}
