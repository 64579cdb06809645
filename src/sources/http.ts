import {readFileSync} from 'node:fs'
import fetch from 'node-fetch'
import type {BlobStore} from '../store/blob-store.js'
import type {BlobWriter} from '../store/blob-writer.js'
import {toDigest} from '../store/hashing.js'
import {FerryError, integrityError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {classifyNetworkError, describe, IdleTimeout, statusError, withRetries} from './http-retry.js'
import {type BodyResponse, getBody} from './body-stream.js'
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
}

/** Result of fetchToStore: the stored blob, and how many bytes crossed the network in this call. */
export interface FetchResult {
  digest: string
  size: number
  fetched: number
}

const MAX_REDIRECTS = 10
/** Progress events at most once per this many bytes: drawing is not free. */
const PROGRESS_STEP = 1 << 20

const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {version?: string}).version ?? '0'
  } catch {
    return '0'
  }
})()

/** What this module reads of an answer, from node-fetch or from getBody. */
interface Answer {
  status: number
  statusText: string
  ok: boolean
  url: string
  headers: {get(name: string): string | null}
  body: unknown
}

interface Attempt<R extends Answer = Answer> {
  res: R
  /** tells the idle timer that data arrived */
  alive(): void
  /** stops the idle timer and releases the connection if the body was not read */
  end(): void
  /** whether the idle timer is what aborted this attempt */
  readonly timedOut: boolean
}

function checkUrl(url: string): void {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new FerryError('usage', 'BAD_URL', `not a URL: "${url}"`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FerryError('usage', 'BAD_URL', `${url}: only http and https URLs can be fetched`)
  }
}

function requestHeaders(extra: Record<string, string>, opts: FetchOptions): Record<string, string> {
  return {
    'User-Agent': opts.userAgent ?? `ferry/${VERSION}`,
    // Bytes exactly as stored upstream: their digest is what was locked, and ranges count them.
    'Accept-Encoding': 'identity',
    ...opts.headers,
    ...extra,
  }
}

/**
 * One request with an idle timer covering both the wait for headers and every gap in the body.
 * `large`: a body to stream into the store, read through getBody (no per-read garbage; each
 * piece valid until the next is read); otherwise node-fetch.
 */
async function request(url: string, method: 'GET' | 'HEAD', extra: Record<string, string>, opts: FetchOptions): Promise<Attempt>
async function request(url: string, method: 'GET', extra: Record<string, string>, opts: FetchOptions, large: true): Promise<Attempt<BodyResponse>>
async function request(url: string, method: 'GET' | 'HEAD', extra: Record<string, string>, opts: FetchOptions, large = false): Promise<Attempt> {
  const controller = new AbortController()
  const state = {timedOut: false}
  const timer = setTimeout(() => {
    state.timedOut = true
    controller.abort()
  }, opts.timeoutMs ?? 60_000)
  const end = () => {
    clearTimeout(timer)
    controller.abort()
  }
  try {
    const headers = requestHeaders(extra, opts)
    const res: Answer = large
      ? await getBody(url, {headers, follow: MAX_REDIRECTS, signal: controller.signal})
      : await fetch(url, {method, headers, compress: false, follow: MAX_REDIRECTS, signal: controller.signal})
    return {
      res,
      alive: () => timer.refresh(),
      end,
      get timedOut() {
        return state.timedOut
      },
    }
  } catch (err) {
    end()
    throw state.timedOut ? new IdleTimeout() : err
  }
}

/** Runs `work` on a started attempt; always releases it, and reports an idle abort as a timeout. */
async function using<T, R extends Answer>(attempt: Attempt<R>, work: (attempt: Attempt<R>) => Promise<T>): Promise<T> {
  try {
    return await work(attempt)
  } catch (err) {
    throw attempt.timedOut ? new IdleTimeout() : err
  } finally {
    attempt.end()
  }
}

function expectOk(res: Answer, url: string, item?: string): void {
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
  return {digest, size, what, policy: retryPolicy(opts), classify: classifier(url, opts)}
}

/** One GET of `url` from byte `from` on, appended to the writer, with progress and an idle timer. */
function getAttempt(url: string, size: number | undefined, opts: FetchOptions, counter: {fetched: number}) {
  const what = opts.item ?? url
  const progress = progressReporter(opts, what)
  const label = describe(url, opts.item)
  return async (writer: BlobWriter, from: number): Promise<void> => {
    const attempt = await request(url, 'GET', from > 0 ? {Range: `bytes=${from}-`} : {}, opts, true)
    await using(attempt, async ({res}) => {
      if (await rangeExhausted(res, from, writer)) return
      expectOk(res, url, opts.item)
      const announced = await alignRange(res, from, writer, label)
      const total = size ?? announced
      progress.total = total
      progress.update(writer.size, true)
      await appendBody(writer, res, total, label, {
        maxSize: size,
        what,
        onData: (n) => {
          attempt.alive()
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
    using(await request(url, 'GET', {}, opts), async (attempt) => {
      const {res} = attempt
      expectOk(res, url, opts.item)
      if ((contentLength(res) ?? 0) > maxBytes) throw tooLarge()
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        attempt.alive()
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
    const head = await using(await request(url, 'HEAD', {}, opts), async ({res}) => {
      if (res.ok) return {size: contentLength(res), url: res.url}
      if (!HEAD_REFUSED.has(res.status)) expectOk(res, url, opts.item)
      return undefined
    })
    if (head?.size !== undefined) return head
    return using(await request(url, 'GET', {Range: 'bytes=0-0'}, opts), async ({res}) => {
      expectOk(res, url, opts.item)
      const size = res.status === 206 ? parseContentRange(res.headers.get('content-range'))?.total : contentLength(res)
      return {size, url: res.url}
    })
  })
}
