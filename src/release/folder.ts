import {readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import semver from 'semver'
import {z} from 'zod'
import {bundleFileName} from '../bundle/format.js'
import {writeFileAtomic} from '../store/atomic-file.js'
import {readJsonFile} from '../store/json-file.js'
import {lockOwner} from '../store/pid-lock.js'
import {Sha256Hex} from '../manifest/lock-format.js'

/**
 * The release folder's index, `releases.json`: every release the folder holds, oldest first. It is
 * written last in a run, atomically, so what it lists is complete; files it does not list are
 * either a release still being made (pending.lock.json names it) or left over, and never shown.
 * Paths are file names inside the folder.
 */
export const RELEASES_SCHEMA = 'ferry.releases/v1'

const FileName = z.string().regex(/^[^/\\]+$/, 'a file name inside the release folder')

export const DeltaEntry = z.strictObject({from: z.string().min(1), path: FileName, sha256: Sha256Hex, size: z.number().int().nonnegative()})
export type DeltaEntry = z.infer<typeof DeltaEntry>

export const ReleaseEntry = z.strictObject({
  version: z.string().min(1),
  /** when its lock was resolved (the bundle's `created`) */
  created: z.string(),
  lock: FileName,
  bundle: z.strictObject({path: FileName, sha256: Sha256Hex, size: z.number().int().nonnegative()}),
  deltas: z.array(DeltaEntry),
  changelog: z.strictObject({md: FileName, json: FileName}),
})
export type ReleaseEntry = z.infer<typeof ReleaseEntry>

export const ReleaseIndex = z.strictObject({
  schema: z.literal(RELEASES_SCHEMA),
  name: z.string().min(1),
  releases: z.array(ReleaseEntry),
})
export type ReleaseIndex = z.infer<typeof ReleaseIndex>

export const INDEX_FILE = 'releases.json'
/** The resolved lock of the release a run is making; a run after a crash finishes it. */
export const PENDING_FILE = 'pending.lock.json'
/** Held by the live run (its pid inside), broken when that pid is gone. */
export const LOCK_FILE = '.release.lock'

/** The file names a release of `name` at `version` gets. */
export function releaseFiles(name: string, version: string) {
  const stem = `${name}-${version}`
  return {
    bundle: bundleFileName(name, version),
    delta: (from: string) => bundleFileName(name, version, from),
    lock: `${stem}.lock.json`,
    changesMd: `${stem}.changes.md`,
    changesJson: `${stem}.changes.json`,
  }
}

/** Every file an index entry names. */
export function filesOf(entry: ReleaseEntry): string[] {
  return [entry.bundle.path, entry.lock, entry.changelog.md, entry.changelog.json, ...entry.deltas.map((d) => d.path)]
}

export async function readIndex(dir: string): Promise<ReleaseIndex | undefined> {
  return readJsonFile(join(dir, INDEX_FILE), ReleaseIndex, 'RELEASES_INVALID', 'restore it from a backup, or move the folder aside and start a new one')
}

export async function writeIndex(dir: string, index: ReleaseIndex): Promise<void> {
  await writeFileAtomic(join(dir, INDEX_FILE), `${JSON.stringify(ReleaseIndex.parse(index), null, 2)}\n`)
}

/** The highest version among the releases (they are kept in order, but a hand-edited index may not be). */
export function highestVersion(releases: ReleaseEntry[]): string | undefined {
  return releases.map((r) => r.version).sort(semver.compare).at(-1)
}

const RELEASE_SUFFIXES = ['.ferry.tar', '.lock.json', '.changes.md', '.changes.json']

/**
 * Removes what a killed run left in the folder: temp files (never under a final name), build locks
 * whose owner is gone, and release files of `name` the index does not list (a prune cut short),
 * except those of the release still being made (`pendingVersion`). Call it holding the folder's lock.
 */
export async function sweepLeftovers(dir: string, index: ReleaseIndex | undefined, name: string | undefined, pendingVersion?: string): Promise<string[]> {
  const listed = new Set(index?.releases.flatMap(filesOf) ?? [])
  const removed: string[] = []
  for (const file of await readdir(dir)) {
    let drop = false
    if (file.startsWith('.') && (file.endsWith('.partial') || file.endsWith('.tmp'))) drop = true
    else if (file.endsWith('.ferry.tar.lock')) drop = lockOwner(await readFile(join(dir, file), 'utf8').catch(() => '')) === undefined
    else if (name && file.startsWith(`${name}-`) && RELEASE_SUFFIXES.some((s) => file.endsWith(s)) && !listed.has(file)) {
      const ofPending = pendingVersion !== undefined && (file.startsWith(`${name}-${pendingVersion}.`) || file.startsWith(`${name}-${pendingVersion}-from-`))
      drop = !ofPending
    }
    if (!drop) continue
    await rm(join(dir, file), {force: true})
    removed.push(file)
  }
  return removed
}
