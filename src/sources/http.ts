import {FERRY_VERSION} from '../version.js'
import type {BlobStore} from '../store/blob-store.js'
import type {BlobWriter} from '../store/blob-writer.js'
import type {ChunkParams} from '../chunks/params.js'
import {toDigest} from '../store/hashing.js'
import {FerryError, integrityError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {classifyNetworkError, describe, statusError, withRetries} from './http-retry.js'
import {type HttpAnswer, sharedTransport} from './net/transport.js'
import {alignRange, appendBody, contentLength, downloadInto, downloadResumable, parseContentRange, rangeExhausted} from './resumable.js'

/** How every HTTP transfer behaves; all fields optional. */
export interface FetchOptions {
  /** attempts after the first one for transient failures (5xx, 429, resets, timeouts); default 4 */
  retries?: number
  /** first wait between attempts in ms, doubled each time, jittered; default 500 */
  backoffMs?: number
  /** abort an attempt when no data arrived for this long (ms); default 60 000 */
  timeoutMs?: number
  /** receives `{phase: 'fetch', item, done, total}` events */
  onProgress?: ProgressListener
  /** names the artifact in progress events and error messages */
  item?: string
  /** extra request headers */
  headers?: Record<string, string>
  /** User-Agent header; default `ferry/<version>` */
  userAgent?: string
  /** proxy URL for every request (`--proxy`), over HTTPS_PROXY / HTTP_PROXY; NO_PROXY still applies */
  proxy?: string
  /** fetchToStore: cut the bytes into chunks while they download, hashed in the same pass */
  chunk?: ChunkParams
}

/** Result of fetchToStore: the stored blob, and how many bytes crossed the network in this call. */
export interface FetchResult {
  digest: string
  size: number
  fetched: number
  /** with `chunk`, when downloaded now: the chunk records (36 bytes each) */
  chunks?: Buffer
}

const MAX_REDIRECTS = 10
/** Progress events at most once per this many bytes: drawing is not free. */
const PROGRESS_STEP = 1 << 20

function checkUrl(url: string): void {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new FerryError('usage', 'BAD_URL', `not a URL: "${url}"; write a full http:// or https:// URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FerryError('usage', 'BAD_URL', `${url}: only http and https URLs can be fetched; serve the file over http(s), e.g. from a mirror`)
  }
}

function requestHeaders(extra: Record<string, string>, opts: FetchOptions): Record<string, string> {
  return {
    'User-Agent': opts.userAgent ?? `ferry/${FERRY_VERSION}`,
    // Bytes exactly as stored upstream: their digest is what was locked, and ranges count them.
    'Accept-Encoding': 'identity',
    ...opts.headers,
    ...extra,
  }
}

/** One request with the idle timeout (no headers, or a gap in the body, for `timeoutMs`). */
function request(url: string, method: 'GET' | 'HEAD', extra: Record<string, string>, opts: FetchOptions, follow?: number): Promise<HttpAnswer> {
  return sharedTransport(opts.proxy).send(url, {method, headers: requestHeaders(extra, opts), idleMs: opts.timeoutMs ?? 60_000, follow: follow ?? MAX_REDIRECTS})
}

/** Runs `work` on an answer; always releases its connection. */
async function using<T>(res: HttpAnswer, work: (res: HttpAnswer) => Promise<T>): Promise<T> {
  try {
    return await work(res)
  } finally {
    res.close()
  }
}

function expectOk(res: HttpAnswer, url: string, item?: string): void {
  if (!res.ok) throw statusError(res.status, res.statusText, res.headers.get('retry-after'), url, item)
}

function retryPolicy(opts: FetchOptions) {
  return {retries: opts.retries ?? 4, backoffMs: opts.backoffMs ?? 500}
}

const classifier = (url: string, opts: FetchOptions) => (err: unknown) => classifyNetworkError(err, url, opts.item, opts.timeoutMs ?? 60_000)

/** Emits progress events, at most one per PROGRESS_STEP bytes, plus the last one. */
function progressReporter(opts: FetchOptions, item: string) {
  let last = -Infinity
  return {
    total: undefined as number | undefined,
    update(done: number, force = false) {
      if (!opts.onProgress) return
      if (done < last) last = done - PROGRESS_STEP
      if (!force && done - last < PROGRESS_STEP) return
      last = done
      opts.onProgress({phase: 'fetch', item, done, total: this.total})
    },
  }
}

/**
 * Downloads `url` into the store unless the blob `expect.sha256` is already there (then `fetched` is 0).
 * Hashes while writing, retries transient failures with backoff, resumes with Range from the bytes
 * already kept (this call's or an earlier run's), and verifies digest and size before the blob lands.
 */
export async function fetchToStore(store: BlobStore, url: string, expect: {sha256: string; size?: number}, opts: FetchOptions = {}): Promise<FetchResult> {
  checkUrl(url)
  const what = opts.item ?? url
  const digest = toDigest(expect.sha256, what)
  const present = await store.has(digest)
  if (present) {
    if (expect.size !== undefined && present.size !== expect.size) {
      throw integrityError('SIZE_MISMATCH', `${what}: the store holds ${digest} with ${present.size} bytes, but ${expect.size} were expected; the size in the lock is wrong`)
    }
    return {digest, size: present.size, fetched: 0}
  }

  const counter = {fetched: 0}
  const result = await downloadResumable(store, downloadJob(url, digest, expect.size, opts), getAttempt(url, expect.size, opts, counter))
  return {...result, fetched: counter.fetched}
}

/**
 * Downloads `url` into `writer` (its place in a bundle archive being written), with the same
 * retries and Range resume as fetchToStore, checked against `expect` at the end. Nothing is kept
 * elsewhere: on a failure the caller throws the archive away. Returns the bytes downloaded.
 */
export async function fetchInto(writer: BlobWriter, url: string, expect: {sha256: string; size: number}, opts: FetchOptions = {}): Promise<number> {
  checkUrl(url)
  const digest = toDigest(expect.sha256, opts.item ?? url)
  const counter = {fetched: 0}
  await downloadInto(writer, downloadJob(url, digest, expect.size, opts), getAttempt(url, expect.size, opts, counter))
  return counter.fetched
}

function downloadJob(url: string, digest: string, size: number | undefined, opts: FetchOptions) {
  const what = opts.item ?? url
  return {digest, size, what, policy: retryPolicy(opts), classify: classifier(url, opts), ...(opts.chunk ? {chunk: opts.chunk} : {})}
}

/** One GET of `url` from byte `from` on, appended to the writer, with progress and an idle timer. */
function getAttempt(url: string, size: number | undefined, opts: FetchOptions, counter: {fetched: number}) {
  const what = opts.item ?? url
  const progress = progressReporter(opts, what)
  const label = describe(url, opts.item)
  return async (writer: BlobWriter, from: number): Promise<void> => {
    await using(await request(url, 'GET', from > 0 ? {Range: `bytes=${from}-`} : {}, opts), async (res) => {
      if (await rangeExhausted(res, from, writer)) return
      expectOk(res, url, opts.item)
      const announced = await alignRange(res, from, writer, label)
      const total = size ?? announced
      progress.total = total
      progress.update(writer.size, true)
      await appendBody(writer, res.body, total, label, {
        maxSize: size,
        what,
        onData: (n) => {
          counter.fetched += n
          progress.update(writer.size)
        },
      })
      progress.update(writer.size, true)
    })
  }
}

/** Downloads a small document (checksum list, signature, key) into memory; refuses more than `maxBytes` (default 16 MiB). */
export async function fetchBytes(url: string, opts: FetchOptions & {maxBytes?: number} = {}): Promise<Buffer> {
  checkUrl(url)
  const maxBytes = opts.maxBytes ?? 16 << 20
  const tooLarge = () =>
    integrityError('TOO_LARGE', `${describe(url, opts.item)}: larger than the ${maxBytes} bytes allowed for this kind of file; check the URL`, {maxBytes})
  return withRetries(retryPolicy(opts), classifier(url, opts), async () =>
    using(await request(url, 'GET', {}, opts), async (res) => {
      expectOk(res, url, opts.item)
      if ((contentLength(res) ?? 0) > maxBytes) throw tooLarge()
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += chunk.byteLength
        if (size > maxBytes) throw tooLarge()
        chunks.push(chunk)
      }
      return Buffer.concat(chunks, size)
    }),
  )
}

/** Statuses with which servers refuse HEAD while serving GET (S3 presigned URLs answer 403). */
const HEAD_REFUSED = new Set([400, 403, 405, 501])

/** Learns a URL's size and final location (after redirects) without downloading it: HEAD, else a one-byte ranged GET. */
export async function probe(url: string, opts: FetchOptions = {}): Promise<{size?: number; url: string}> {
  checkUrl(url)
  return withRetries(retryPolicy(opts), classifier(url, opts), async () => {
    const head = await using(await request(url, 'HEAD', {}, opts), async (res) => {
      if (res.ok) return {size: contentLength(res), url: res.url}
      if (!HEAD_REFUSED.has(res.status)) expectOk(res, url, opts.item)
      return undefined
    })
    if (head?.size !== undefined) return head
    return using(await request(url, 'GET', {Range: 'bytes=0-0'}, opts), async (res) => {
      expectOk(res, url, opts.item)
      const size = res.status === 206 ? parseContentRange(res.headers.get('content-range'))?.total : contentLength(res)
      return {size, url: res.url}
    })
  })
}

/** Where `url` redirects to (its Location, not followed), with the status; one try, no retries. */
export async function redirectOf(url: string, opts: FetchOptions = {}): Promise<{status: number; location?: string}> {
  checkUrl(url)
  return using(await request(url, 'GET', {}, opts, 0), async (res) => ({status: res.status, location: res.headers.get('location') ?? undefined}))
}
