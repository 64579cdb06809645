import {posix} from 'node:path'
import {integrityError} from '../errors.js'

/**
 * Upstream checksum files. Understood forms, one entry a line:
 *   GNU sha256sum   `<hex>  name` (text) or `<hex> *name` (binary); a leading `\` escapes the name
 *   BSD tag         `SHA256 (name) = <hex>`
 *   bare            a file holding only `<hex>` (dl.k8s.io's `<bin>.sha256`), which stands for any name
 * CRLF line ends, blank lines and `#` comments are allowed. Names match by basename,
 * so `./dist/k3s` in a list answers for `k3s`.
 */
export interface ChecksumEntry {
  sha256: string
  name: string
  line: number
}

const HEX = /^[0-9a-fA-F]{64}$/
const GNU = /^\\?([0-9a-fA-F]{64})(?: [ *]| )(.+)$/
const BSD = /^SHA256 \((.+)\) ?= ?([0-9a-fA-F]{64})$/

interface Parsed {
  entries: ChecksumEntry[]
  /** a bare-hex file: the one digest it holds */
  bare?: string
  /** lines that are none of the forms above */
  malformed: Array<{line: number; text: string}>
}

function splitLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r?\n|\r/)
}

function unescapeName(name: string): string {
  return name.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\'))
}

export function parseChecksums(text: string): Parsed {
  const lines = splitLines(text)
  const meaningful = lines.map((l, i) => ({text: l.trim(), line: i + 1})).filter((l) => l.text !== '' && !l.text.startsWith('#'))
  if (meaningful.length === 1 && HEX.test(meaningful[0].text)) {
    return {entries: [], bare: meaningful[0].text.toLowerCase(), malformed: []}
  }
  const entries: ChecksumEntry[] = []
  const malformed: Parsed['malformed'] = []
  for (const {text: l, line} of meaningful) {
    const gnu = GNU.exec(l)
    if (gnu) {
      const name = l.startsWith('\\') ? unescapeName(gnu[2]) : gnu[2]
      entries.push({sha256: gnu[1].toLowerCase(), name, line})
      continue
    }
    const bsd = BSD.exec(l)
    if (bsd) {
      entries.push({sha256: bsd[2].toLowerCase(), name: bsd[1], line})
      continue
    }
    malformed.push({line, text: l})
  }
  return {entries, malformed}
}

const base = (name: string) => posix.basename(name.replace(/\\/g, '/'))

/**
 * The sha256 listed for `fileName` (matched by basename), or undefined when the
 * file does not list it. A malformed line or two different digests for the
 * same name are errors only when they concern `fileName`.
 */
export function findChecksum(text: string, fileName: string, source = 'checksum file'): string | undefined {
  const parsed = parseChecksums(text)
  if (parsed.bare) return parsed.bare
  const want = base(fileName)
  const hits = parsed.entries.filter((e) => base(e.name) === want)
  const digests = new Set(hits.map((h) => h.sha256))
  if (digests.size > 1) {
    throw integrityError(
      'CHECKSUM_CONFLICT',
      `${source} lists ${want} ${hits.length} times with different digests (lines ${hits.map((h) => h.line).join(', ')}); refusing to choose one`,
    )
  }
  if (hits.length > 0) return hits[0].sha256
  const broken = parsed.malformed.find((m) => m.text.includes(want))
  if (broken) {
    throw integrityError('CHECKSUM_MALFORMED', `${source} line ${broken.line} mentions ${want} but is not a "<sha256>  <name>" line: ${JSON.stringify(broken.text.slice(0, 120))}`)
  }
  return undefined
}

/** Like findChecksum, but a file that does not list `fileName` is an integrity error (exit 3). */
export function requireChecksum(text: string, fileName: string, source: string): string {
  const digest = findChecksum(text, fileName, source)
  if (digest === undefined) {
    throw integrityError(
      'CHECKSUM_NOT_LISTED',
      `${source} does not list ${base(fileName)}: nothing upstream vouches for it (check the URL and the checksum file, or pin sha256 in the manifest)`,
    )
  }
  return digest
}
