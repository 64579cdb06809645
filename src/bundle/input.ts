import {createReadStream} from 'node:fs'
import {stat} from 'node:fs/promises'
import {usageError} from '../ui/errors.js'

export interface BundleInput {
  /** what the user named, for messages */
  label: string
  /** total bytes of the archive */
  size: number
  /** a fresh stream of the archive's bytes each call */
  open(): AsyncIterable<Buffer>
}

/** Opens a bundle given as a `.ferry.tar` file. */
export async function openBundleInput(path: string): Promise<BundleInput> {
  const info = await stat(path).catch(() => undefined)
  if (!info) throw usageError('NOT_FOUND', `${path}: no such bundle`)
  if (!info.isFile()) throw usageError('NOT_A_BUNDLE', `${path} is not a bundle file`)
  return {
    label: path,
    size: info.size,
    open: () => createReadStream(path, {highWaterMark: 1 << 20}) as AsyncIterable<Buffer>,
  }
}
