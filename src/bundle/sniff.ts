import {open} from 'node:fs/promises'
import {basename} from 'node:path'
import {usageError} from '../errors.js'

const COMPRESSED: Array<[string, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
]

const WHAT = 'give a .ferry.tar written by "ferry bundle build", a USB stick folder or a .parts.json'

/**
 * Refuses, before any reading, a file that is plainly something else (exit 2, NOT_A_BUNDLE): a
 * compressed archive, a file that is no tar at all, or a tar whose first entry is not bundle.json.
 * A file named *.ferry.tar claims to be a bundle: damage in it is left to verification (exit 3).
 */
export async function refuseNonBundle(path: string, size: number): Promise<void> {
  const head = Buffer.alloc(512)
  const fh = await open(path, 'r')
  let got: number
  try {
    got = (await fh.read(head, 0, 512, 0)).bytesRead
  } finally {
    await fh.close()
  }
  const bytes = head.subarray(0, got)
  for (const [kind, magic] of COMPRESSED) {
    if (bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b)) {
      throw usageError('NOT_A_BUNDLE', `${path} is ${kind}-compressed, not a Ferry bundle (bundles are never compressed): ${WHAT}`)
    }
  }
  if (basename(path).endsWith('.ferry.tar')) return
  if (size === 0) throw usageError('NOT_A_BUNDLE', `${path} is empty, not a Ferry bundle: ${WHAT}`)
  const tar = got === 512 && head.subarray(257, 262).toString('latin1') === 'ustar'
  if (!tar) throw usageError('NOT_A_BUNDLE', `${path} is not a Ferry bundle (not a tar archive): ${WHAT}`)
  const first = head.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '')
  if (first !== 'bundle.json') throw usageError('NOT_A_BUNDLE', `${path} is a tar archive but not a Ferry bundle (its first entry is "${first}", not bundle.json): ${WHAT}`)
}
