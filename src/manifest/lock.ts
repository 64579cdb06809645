import {readFile} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {resolveFiles} from '../sources/files.js'
import {resolveK3s} from '../sources/k3s.js'
import {resolveKubernetes} from '../sources/kubernetes.js'
import {resolveImages} from '../sources/oci/resolve.js'
import {createResolveContext, orderArtifacts} from '../sources/resolve-context.js'
import {resolveVms} from '../sources/vm.js'
import {writeFileAtomic} from '../store/atomic-file.js'
import {refuseFileAsFolder} from '../store/folder.js'
import {BlobStore} from '../store/blob-store.js'
import {asLocalIoError} from '../errors.js'
import {parseDuration} from './duration.js'
import {imagesToResolve} from './image-entries.js'
import {loadManifest} from './load.js'
import {LockFile, type HealthCheck} from './lock-format.js'
import type {LockOptions} from './lock-options.js'
import type {HealthSpec} from './schema.js'

export type {LockOptions} from './lock-options.js'


/**
 * Resolves a manifest into a lock: every artifact pinned to a URL, a sha256 and a
 * size, with how upstream vouched for it. Each of `spec.images` is pinned to the digest of
 * its manifest or index (an `image` artifact with its `ref` and the `platforms` kept).
 */
export async function lockManifest(path: string, opts: LockOptions = {}): Promise<LockFile> {
  const {manifest, dir} = await loadManifest(path)
  const now = opts.now ?? new Date()
  let store: Promise<BlobStore> | undefined
  const ctx = createResolveContext({
    manifestDir: dir,
    http: opts.http,
    onProgress: opts.onProgress,
    store: () =>
      (store ??= (async () => {
        const s = opts.store ?? new BlobStore(BlobStore.defaultRoot())
        await s.init()
        return s
      })()),
  })
  const {spec} = manifest
  const groups = await Promise.all([
    resolveVms(spec.vm, ctx),
    spec.k3s ? resolveK3s(spec.k3s, spec.platforms, ctx) : [],
    spec.kubernetes ? resolveKubernetes(spec.kubernetes, spec.platforms, ctx) : [],
    resolveFiles(spec.files, ctx),
    resolveImages(await imagesToResolve(spec.images, spec.cosign, dir), spec.platforms, {manifestDir: dir, registry: opts.registry, onProgress: opts.onProgress}),
  ])
  const resolved = isoSeconds(now)
  return LockFile.parse({
    schema: 'ferry.lock/v1',
    name: manifest.metadata.name,
    version: manifest.metadata.version === 'auto' ? autoVersion(now) : manifest.metadata.version,
    resolved,
    expires: isoSeconds(new Date(Date.parse(resolved) + parseDuration(spec.expiresIn) * 1000)),
    platforms: spec.platforms,
    health: spec.health.map(healthCheck),
    artifacts: orderArtifacts(groups.flat()),
  } satisfies LockFile)
}

/**
 * `version: auto` → `<YYYY>.<M>.<DHHMM>` of `now` in UTC, e.g. 2026-11-05 14:30 → 2026.11.51430.
 * The patch is day*10000 + hour*100 + minute, so no part has a leading zero (valid
 * semver) and later runs sort higher; two runs in the same minute get the same version.
 */
export function autoVersion(now: Date): string {
  const patch = now.getUTCDate() * 10000 + now.getUTCHours() * 100 + now.getUTCMinutes()
  return `${now.getUTCFullYear()}.${now.getUTCMonth() + 1}.${patch}`
}

/** ISO 8601 in UTC to the second: 2026-11-05T14:30:00Z. */
export function isoSeconds(date: Date): string {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z')
}

function healthCheck(h: HealthSpec): HealthCheck {
  return {
    name: h.name,
    ...(h.run === undefined ? {} : {run: h.run}),
    ...(h.http === undefined ? {} : {http: h.http}),
    timeout: parseDuration(h.timeout),
    retries: h.retries ?? 0,
    interval: h.interval === undefined ? 5 : parseDuration(h.interval),
  }
}

/** Writes the lock as stable JSON (2 spaces, trailing newline), atomically: temp file, fsync, rename. */
export async function writeLock(lock: LockFile, file: string): Promise<void> {
  try {
    await writeFileAtomic(file, `${JSON.stringify(LockFile.parse(lock), null, 2)}\n`)
  } catch (err) {
    if (['EEXIST', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) await refuseFileAsFolder(dirname(file), '--out', `the lock ${basename(file)} cannot be written there: give a path in a folder`)
    throw asLocalIoError(err, `writing ${file}`)
  }
}

/**
 * Where `ferry manifest lock` writes by default: beside the manifest, named after it
 * (`site.yaml` → `site.lock.json`), so two manifests in one folder keep two locks.
 */
export function defaultLockPath(manifestPath: string): string {
  return join(dirname(manifestPath), `${basename(manifestPath).replace(/\.(ya?ml|json)$/i, '')}.lock.json`)
}

/** The name every manifest's lock had before locks were named after their manifest. */
export const LEGACY_LOCK_NAME = 'manifest.lock.json'

/**
 * A `manifest.lock.json` beside the manifest that holds a lock of the same bundle name, left by
 * an older Ferry: a build from it would carry yesterday's pins. Returned so the caller can say so.
 */
export async function staleLegacyLock(manifestPath: string, lock: LockFile, written: string): Promise<string | undefined> {
  const legacy = join(dirname(manifestPath), LEGACY_LOCK_NAME)
  if (legacy === written) return undefined
  try {
    const old = JSON.parse(await readFile(legacy, 'utf8')) as {schema?: unknown; name?: unknown}
    return old.schema === 'ferry.lock/v1' && old.name === lock.name ? legacy : undefined
  } catch {
    return undefined
  }
}

export {readLock} from './lock-read.js'
