import {posix} from 'node:path'
import type {LockedArtifact} from '../manifest/lock-format.js'
import type {BlobStore} from '../store/blob-store.js'
import {usageError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {fetchBytes, fetchToStore, probe, redirectOf, type FetchOptions} from './http.js'

/**
 * What the upstream resolvers (vm, k3s, kubernetes, files) share while a manifest
 * is locked: small upstream files fetched once, and the size of each artifact.
 */
export interface ResolveContext {
  /** the manifest's folder: relative paths in the manifest (keys) start here */
  manifestDir: string
  /** the bytes of a small upstream file (checksum list, signature), fetched once per URL */
  fetchSmall(url: string): Promise<Buffer>
  /** the artifact's size: Content-Length of a HEAD, else by downloading it into the store (checked against sha256) */
  sizeOf(url: string, sha256: string, name: string): Promise<number>
  /** where a URL redirects to, not followed (a channel server's answer) */
  redirectOf(url: string): Promise<{status: number; location?: string}>
}

export interface ResolveContextOptions {
  manifestDir: string
  /** where an artifact goes when its size is only learnt by downloading it */
  store: () => Promise<BlobStore>
  http?: FetchOptions
  onProgress?: ProgressListener
  /** requests at once */
  concurrency?: number
}

export function createResolveContext(opts: ResolveContextOptions): ResolveContext {
  const small = new Map<string, Promise<Buffer>>()
  const limit = limiter(opts.concurrency ?? 4)
  return {
    manifestDir: opts.manifestDir,
    fetchSmall(url) {
      let pending = small.get(url)
      if (!pending) {
        pending = limit(() => fetchBytes(url, opts.http))
        small.set(url, pending)
      }
      return pending
    },
    redirectOf: (url) => redirectOf(url, {...opts.http, timeoutMs: 30_000}),
    sizeOf(url, sha256, name) {
      return limit(async () => {
        const head = await probe(url, opts.http)
        if (head.size !== undefined) return head.size
        // No Content-Length: the only honest size is the one of the bytes themselves.
        const store = await opts.store()
        const got = await fetchToStore(store, url, {sha256}, {...opts.http, onProgress: opts.onProgress, item: name})
        return got.size
      })
    },
  }
}

/** Runs at most `n` tasks at once. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0
  const waiting: Array<() => void> = []
  return async (task) => {
    if (running >= n) await new Promise<void>((resolve) => waiting.push(resolve))
    running++
    try {
      return await task()
    } finally {
      running--
      waiting.shift()?.()
    }
  }
}

/** The file name a URL points at (`https://h/a/b.vhdx?x=1` → `b.vhdx`). */
export function urlBasename(url: string, field: string): string {
  const name = decodeURIComponent(posix.basename(new URL(url).pathname))
  if (!name || name === '.' || name === '..' || name.includes('/')) {
    throw usageError('URL_NO_FILE_NAME', `${field}: ${url} names no file; give the URL of the file itself`)
  }
  return name
}

/** Refuses two artifacts with one name, then puts them in the lock's fixed order. */
export function orderArtifacts(artifacts: LockedArtifact[]): LockedArtifact[] {
  const kindOrder = ['vm', 'k3s', 'kubernetes', 'image', 'file']
  const seen = new Set<string>()
  for (const a of artifacts) {
    if (seen.has(a.name)) {
      throw usageError('DUPLICATE_ARTIFACT', `two artifacts are named ${a.name}; give one of them another name (vm[].name, files[].name)`)
    }
    seen.add(a.name)
  }
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
  return [...artifacts].sort((a, b) => kindOrder.indexOf(a.kind) - kindOrder.indexOf(b.kind) || cmp(a.name, b.name))
}
