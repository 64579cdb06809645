import {readdir, rm} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {buildBundle} from '../bundle/build.js'
import {loadBase} from '../bundle/delta.js'
import {loadManifest} from '../manifest/load.js'
import {lockManifest, readLock, writeLock} from '../manifest/lock.js'
import type {LockFile} from '../manifest/lock-format.js'
import type {FetchOptions} from '../sources/http.js'
import type {RegistryOptions} from '../sources/oci/registry-client.js'
import type {BlobStore} from '../store/blob-store.js'
import {makeFolder} from '../store/folder.js'
import {acquirePidLock} from '../store/pid-lock.js'
import {checkpoint} from '../device/testing.js'
import type {Signer} from '../trust/sign.js'
import {asLocalIoError, noSignerError, usageError} from '../errors.js'
import {formatBytes} from '../format.js'
import type {ProgressListener} from '../progress.js'
import {compareLocks, type Changes, writeChanges} from './changelog.js'
import {type DeltaEntry, highestVersion, INDEX_FILE, LOCK_FILE, PENDING_FILE, readIndex, type ReleaseEntry, type ReleaseIndex, releaseFiles, sweepLeftovers, writeIndex} from './folder.js'
import {planPrune, removePruned} from './prune.js'
import {chooseVersion} from './version.js'

export interface ReleaseOptions {
  manifest: string
  /** the release folder */
  dir: string
  signers: Signer[]
  store: BlobStore
  /** full releases to keep (default 6; the newest is always kept) */
  keep?: number
  /** deltas to build, from the newest releases down (default 3) */
  deltas?: number
  registry?: RegistryOptions
  http?: FetchOptions
  concurrency?: number
  /** one plain line per step */
  onStep?: (line: string) => void
  onProgress?: ProgressListener
  /** "now" for resolving and the expiry check; tests only */
  now?: Date
}

/** What `release run --json` prints (DESIGN.md): these keys, always, whether or not a release was made. */
export interface ReleaseResult {
  changed: boolean
  /** the release made, or the last one when nothing changed */
  version: string
  bundle: {path: string; sha256: string; size: number}
  deltas: Array<{from: string; path: string; size: number}>
  /** the changelog files of that release */
  changelog: {md: string; json: string}
  /** files removed by --keep and by deltas whose base went */
  pruned: string[]
}

/**
 * The monthly release job (DESIGN.md, "The monthly release job"): under the folder's lock, resolve the
 * manifest afresh; when nothing changed since the last release, write nothing; else save the resolved
 * lock, build the full bundle and a delta from each recent release, write the changelog, record the
 * release in releases.json (last, atomically) and prune. A run after a crash finishes the saved lock.
 */
export async function runRelease(opts: ReleaseOptions): Promise<ReleaseResult> {
  const dir = opts.dir
  const step = opts.onStep ?? (() => {})
  if (opts.signers.length === 0) throw noSignerError('a release')
  try {
    await makeFolder(dir, '--out')
  } catch (err) {
    throw asLocalIoError(err, `creating the release folder ${dir}`)
  }
  const folderLock = await acquirePidLock(join(dir, LOCK_FILE), `the release folder ${dir}`)
  try {
    return await runLocked(opts, step)
  } catch (err) {
    throw asLocalIoError(err, `release in ${dir}`)
  } finally {
    await folderLock.release()
  }
}

async function runLocked(opts: ReleaseOptions, step: (line: string) => void): Promise<ReleaseResult> {
  const {dir} = opts
  const index = await readIndex(dir)
  const pendingPath = join(dir, PENDING_FILE)
  let pending = await readLock(pendingPath).catch((err) => ((err as {code?: string}).code === 'NOT_FOUND' ? undefined : Promise.reject(err)))
  if (pending && index?.releases.some((r) => r.version === pending!.version)) {
    // killed after recording the release, before tidying up
    await rm(pendingPath, {force: true})
    pending = undefined
  }
  const now = opts.now ?? new Date()
  if (pending && Date.parse(pending.expires) <= now.getTime()) {
    step(`dropping the unfinished release ${pending.version}: its lock expired at ${pending.expires}`)
    await rm(pendingPath, {force: true})
    pending = undefined
  }
  const leftovers = await sweepLeftovers(dir, index, index?.name ?? pending?.name, pending?.version)
  if (leftovers.length) step(`removed ${leftovers.length} file(s) a cut-short run left: ${leftovers.join(', ')}`)

  const releases = index?.releases ?? []
  const last = releases.at(-1)
  let lock: LockFile
  if (pending) {
    lock = pending
    step(`finishing ${lock.name} ${lock.version}, begun by a run that did not end (${PENDING_FILE})`)
  } else {
    step(`resolving ${opts.manifest}`)
    const {manifest} = await loadManifest(opts.manifest)
    lock = await lockManifest(opts.manifest, {store: opts.store, registry: opts.registry, http: opts.http, onProgress: opts.onProgress, now})
    if (index && lock.name !== index.name) {
      throw usageError('RELEASE_NAME', `${dir} holds releases of ${index.name}, not ${lock.name}; give another --out`)
    }
    const lastLock = last ? await readLock(join(dir, last.lock)) : undefined
    if (last && lastLock && compareLocks(lastLock, lock).changes.length === 0) {
      step(`nothing changed upstream since ${lock.name} ${last.version}: no release made`)
      return {changed: false, version: last.version, bundle: {...last.bundle, path: join(dir, last.bundle.path)}, deltas: deltasOut(dir, last.deltas), changelog: changelogOut(dir, last.changelog), pruned: []}
    }
    lock = {...lock, version: chooseVersion(lock.version, manifest.metadata.version === 'auto', highestVersion(releases))}
    await writeLock(lock, pendingPath)
    step(`resolved ${lock.name} ${lock.version}: ${lock.artifacts.length} artifact(s); lock saved as ${PENDING_FILE}`)
  }
  checkpoint('release:pending')
  return makeRelease(opts, step, lock, index, pendingPath)
}

const deltasOut = (dir: string, deltas: DeltaEntry[]) => deltas.map((d) => ({from: d.from, path: join(dir, d.path), size: d.size}))
const changelogOut = (dir: string, c: {md: string; json: string}) => ({md: join(dir, c.md), json: join(dir, c.json)})

async function makeRelease(opts: ReleaseOptions, step: (line: string) => void, lock: LockFile, index: ReleaseIndex | undefined, pendingPath: string): Promise<ReleaseResult> {
  const {dir} = opts
  const releases = index?.releases ?? []
  const files = releaseFiles(lock.name, lock.version)
  let recorded = false
  const build = {store: opts.store, signers: opts.signers, outDir: dir, concurrency: opts.concurrency, registry: opts.registry, imageJobs: opts.concurrency, onProgress: opts.onProgress, now: opts.now}
  try {
    step(`building the full bundle ${files.bundle}`)
    const full = await buildBundle(lock, build)
    step(`built ${files.bundle}: ${formatBytes(full.size)}, sha256 ${full.sha256}`)
    checkpoint('release:full')
    const deltas: DeltaEntry[] = []
    // Only from releases --keep leaves: a delta whose base is pruned in this run would go at once.
    const keep = Math.max(1, opts.keep ?? 6)
    const bases = releases.slice(releases.length - Math.min(Math.max(0, opts.deltas ?? 3), keep - 1, releases.length)).reverse()
    for (const base of bases) {
      step(`building the delta from ${base.version}`)
      const since = await loadBase(join(dir, base.bundle.path), {store: opts.store, onProgress: opts.onProgress})
      const delta = await buildBundle(lock, {...build, since})
      deltas.push({from: base.version, path: basename(delta.path), sha256: delta.sha256, size: delta.size})
      step(`built ${basename(delta.path)}: ${formatBytes(delta.size)}`)
      checkpoint('release:delta')
    }
    const previous = releases.at(-1)
    const previousLock = previous ? await readLock(join(dir, previous.lock)) : undefined
    const {changes, unchanged} = compareLocks(previousLock, lock)
    const changelog: Changes = {
      schema: 'ferry.changes/v1',
      name: lock.name,
      version: lock.version,
      ...(previous ? {previous: previous.version} : {}),
      created: lock.resolved,
      artifacts: changes,
      unchanged,
      bundle: {path: files.bundle, size: full.size, sha256: full.sha256},
      deltas: deltas.map((d) => ({from: d.from, path: d.path, size: d.size})),
    }
    await writeChanges(dir, {md: files.changesMd, json: files.changesJson}, changelog)
    await writeLock(lock, join(dir, files.lock))
    step(`changelog ${files.changesMd}: ${changes.filter((c) => c.change === 'changed').length} changed, ${changes.filter((c) => c.change === 'added').length} added, ${changes.filter((c) => c.change === 'removed').length} removed`)
    checkpoint('release:changelog')

    const entry: ReleaseEntry = {
      version: lock.version,
      created: lock.resolved,
      lock: files.lock,
      bundle: {path: files.bundle, sha256: full.sha256, size: full.size},
      deltas,
      changelog: {md: files.changesMd, json: files.changesJson},
    }
    const prune = planPrune([...releases, entry], keep)
    await writeIndex(dir, {schema: 'ferry.releases/v1', name: lock.name, releases: prune.kept})
    recorded = true
    step(`recorded ${lock.name} ${lock.version} in ${INDEX_FILE}`)
    checkpoint('release:recorded')
    await rm(pendingPath, {force: true})
    await removePruned(dir, prune.files)
    if (prune.files.length) step(`pruned ${prune.versions.length ? `release(s) ${prune.versions.join(', ')}` : 'nothing but deltas'}: ${prune.files.length} file(s)`)
    const kept = prune.kept.at(-1)!
    return {
      changed: true,
      version: lock.version,
      bundle: {path: join(dir, files.bundle), sha256: full.sha256, size: full.size},
      deltas: deltasOut(dir, kept.deltas),
      changelog: changelogOut(dir, entry.changelog),
      pruned: prune.files.map((f) => join(dir, f)),
    }
  } catch (err) {
    const failure = asLocalIoError(err, `writing the release ${lock.version} into ${dir}`)
    // A full disk: give back the space this release took; its saved lock stays for the next run.
    if ((failure as {exit?: number}).exit === 6 && !recorded) await dropUnrecorded(dir, lock)
    throw failure
  }
}

/** Removes the bundles, deltas and changelog of a release not recorded in the index (best effort). */
async function dropUnrecorded(dir: string, lock: LockFile): Promise<void> {
  const files = releaseFiles(lock.name, lock.version)
  const prefix = `${lock.name}-${lock.version}-from-`
  for (const file of await readdir(dir).catch(() => [] as string[])) {
    if (file === files.bundle || file === files.changesMd || file === files.changesJson || file === files.lock || (file.startsWith(prefix) && file.endsWith('.ferry.tar'))) {
      await rm(join(dir, file), {force: true}).catch(() => undefined)
    }
  }
}
