import {stat} from 'node:fs/promises'
import {locateBundle} from '../media/locate.js'
import {openPartsInput} from '../media/parts-reader.js'
import {readFileChunks} from '../store/file-chunks.js'
import {usageError} from '../errors.js'
import {refuseNonBundle} from './sniff.js'

export interface BundleInput {
  /** what the user named, for messages */
  label: string
  /** total bytes of the archive */
  size: number
  /** a fresh stream of the archive's bytes each call; a chunk's memory may be reused once the next chunk is asked for: a consumer that keeps chunks longer copies them */
  open(): AsyncIterable<Buffer>
}

/**
 * Opens a bundle given as a `.ferry.tar` file, or written as parts to a stick:
 * a `*.parts.json`, the stick's folder (holding one bundle) or `DIR/<bundle>`;
 * parts are read as one stream, never joined on disk.
 */
export async function openBundleInput(path: string): Promise<BundleInput> {
  const located = await locateBundle(path)
  if (located?.kind === 'parts') return openPartsInput(located.path)
  if (located) path = located.path
  const info = await stat(path).catch(() => undefined)
  if (!info) throw usageError('NOT_FOUND', `${path}: no such bundle`)
  if (!info.isFile()) throw usageError('NOT_A_BUNDLE', `${path} is not a bundle file: give a .ferry.tar, a USB stick folder or a .parts.json`)
  await refuseNonBundle(path, info.size)
  return {
    label: path,
    size: info.size,
    open: () => readFileChunks(path),
  }
}
