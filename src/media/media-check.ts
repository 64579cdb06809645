import {readdir, stat} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {FerryError, integrityError, usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {mediaError} from './media-io.js'
import {PARTS_SUFFIX, partsFileName, readPartsFile} from './parts-format.js'
import {readPart, wholeToCheck} from './parts-reader.js'

export interface MediaBundle {
  /** the bundle's file name, e.g. edge-site-1.2.3.ferry.tar */
  bundle: string
  name?: string
  version?: string
  size?: number
  parts: number
  /** parts.json is valid and every part it lists is there with its size (not hashed: see verifyMedia) */
  complete: boolean
  problem?: string
}

export interface PartCheck {
  file: string
  size: number
  ok: boolean
  problem?: string
}

export interface MediaVerification {
  bundle: string
  name: string
  version: string
  size: number
  /** the whole bundle's, when parts.json gives it */
  sha256?: string
  parts: PartCheck[]
}

const PART_RE = /^(.+\.ferry\.tar)\.part-\d{3}$/
const INCOMPLETE = 'no parts.json: the write was interrupted; run "ferry usb write" again'

async function scan(dir: string): Promise<{described: string[]; orphans: Map<string, number>}> {
  const names = await readdir(dir).catch((err) => {
    throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? usageError('NOT_FOUND', `${dir}: no such folder; mount the stick and give its folder`) : mediaError(err, `reading ${dir}`)
  })
  const described = names.filter((n) => n.endsWith(PARTS_SUFFIX) && !n.startsWith('.')).map((n) => n.slice(0, -PARTS_SUFFIX.length)).sort()
  const orphans = new Map<string, number>()
  for (const n of names) {
    const m = PART_RE.exec(n)
    if (m && !described.includes(m[1])) orphans.set(m[1], (orphans.get(m[1]) ?? 0) + 1)
  }
  return {described, orphans}
}

/** The bundles on a medium, complete or not; reads only names and sizes. */
export async function listMedia(dir: string): Promise<MediaBundle[]> {
  const {described, orphans} = await scan(dir)
  const out: MediaBundle[] = []
  for (const bundle of described) {
    try {
      const parts = await readPartsFile(join(dir, partsFileName(bundle)))
      const problems: string[] = []
      for (const p of parts.parts) {
        const size = (await stat(join(dir, p.file)).catch(() => undefined))?.size
        if (size === undefined) problems.push(`${p.file} is missing`)
        else if (size !== p.size) problems.push(`${p.file} is ${size} bytes, ${p.size} expected`)
      }
      out.push({bundle, name: parts.name, version: parts.version, size: parts.size, parts: parts.parts.length, complete: problems.length === 0, ...(problems.length ? {problem: problems.join('; ')} : {})})
    } catch (err) {
      if (!(err instanceof FerryError) || err.exit !== 3) throw err
      out.push({bundle, parts: 0, complete: false, problem: err.message})
    }
  }
  for (const [bundle, count] of orphans) out.push({bundle, parts: count, complete: false, problem: INCOMPLETE})
  return out.sort((a, b) => a.bundle.localeCompare(b.bundle))
}

/** Which bundle `pick` means on a medium: its file name, with or without .ferry.tar, or its parts.json name. */
function resolvePick(pick: string, described: string[], orphans: Map<string, number>, dir: string): string {
  const base = basename(pick)
  const candidates = [base, `${base}.ferry.tar`, base.endsWith(PARTS_SUFFIX) ? base.slice(0, -PARTS_SUFFIX.length) : '']
  const found = candidates.find((c) => described.includes(c))
  if (found) return found
  const orphan = candidates.find((c) => orphans.has(c))
  if (orphan) throw integrityError('INCOMPLETE_WRITE', `${orphan} on ${dir} has ${INCOMPLETE}`)
  throw usageError('NOT_FOUND', `no bundle "${pick}" on ${dir}${described.length ? `; it holds ${described.join(', ')}` : ''}`)
}

/**
 * Re-reads every part of the bundles on a medium (or of the one named) and
 * checks each against `<bundle>.parts.json`, then the whole against its
 * sha256. Fails naming every bad or missing part.
 */
export async function verifyMedia(dir: string, pick?: string, onProgress?: ProgressListener): Promise<MediaVerification[]> {
  const {described, orphans} = await scan(dir)
  const chosen = pick ? [resolvePick(pick, described, orphans, dir)] : described
  if (!pick && chosen.length === 0 && orphans.size === 0) throw usageError('NO_BUNDLE', `${dir} holds no bundle written by "ferry usb write"`)
  const problems: string[] = pick ? [] : [...orphans.keys()].map((b) => `${b}: ${INCOMPLETE}`)
  const results: MediaVerification[] = []
  for (const bundle of chosen) {
    const parts = await readPartsFile(join(dir, partsFileName(bundle)))
    const total = wholeToCheck(parts)
    const checks: PartCheck[] = []
    let done = 0
    let last = 0
    for (const part of parts.parts) {
      const size = (await stat(join(dir, part.file)).catch(() => undefined))?.size
      let problem: string | undefined
      if (size === undefined) problem = `${part.file} is missing`
      else if (size !== part.size) problem = `${part.file} is ${size} bytes, ${part.size} expected (truncated or from another bundle)`
      else {
        try {
          for await (const chunk of readPart(dir, part, total)) {
            done += chunk.length
            if (onProgress && done - last >= 4 << 20) {
              last = done
              onProgress({phase: 'verify', item: part.file, done, total: parts.size})
            }
          }
        } catch (err) {
          if (!(err instanceof FerryError) || err.exit !== 3) throw err
          problem = `${part.file} does not match its sha256 (damaged, or a part of another bundle)`
        }
      }
      checks.push({file: part.file, size: part.size, ok: !problem, ...(problem ? {problem} : {})})
      if (problem) problems.push(problem)
    }
    if (total && checks.every((c) => c.ok) && total.digest() !== parts.sha256) {
      problems.push(`the parts of ${bundle} are intact but join into a sha256 other than the one in ${partsFileName(bundle)}: the parts file was altered`)
    }
    results.push({bundle, name: parts.name, version: parts.version, size: parts.size, sha256: parts.sha256, parts: checks})
  }
  if (problems.length) {
    throw integrityError('MEDIA_DAMAGED', `${dir}: ${problems.join('; ')}; write the bundle to the stick again`, {problems})
  }
  return results
}
