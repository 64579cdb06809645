import type {ChunkParams} from '../chunks/params.js'
import {type BlobInfo, checkBlob} from '../store/blob-check.js'
import type {BlobStore} from '../store/blob-store.js'
import type {AppendOptions, BlobWriter} from '../store/blob-writer.js'
import {ExitCode, FerryError} from '../errors.js'
import {RestartSignal, type RetryPolicy, TransientError, withRetries} from './http-retry.js'

/** Parses a `Content-Range: bytes a-b/total` header; `start` is absent for an unsatisfied range. */
export function parseContentRange(value: string | null): {start?: number; total?: number} | undefined {
  const m = value ? /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(value.trim()) : null
  if (!m) return undefined
  return {start: m[1] === undefined ? undefined : Number(m[1]), total: m[2] === '*' ? undefined : Number(m[2])}
}

interface RangeAnswer {
  status: number
  headers: {get(name: string): string | null}
}

/**
 * A 416 to `Range: bytes=<from>-`: true when the kept bytes are the whole file; otherwise they are
 * not this file's, so they go and the download starts over. False for any other answer.
 */
export async function rangeExhausted(res: RangeAnswer, from: number, writer: BlobWriter): Promise<boolean> {
  if (from === 0 || res.status !== 416) return false
  if (parseContentRange(res.headers.get('content-range'))?.total === from) return true
  await writer.truncate()
  throw new RestartSignal()
}

/**
 * Lines a successful answer up with the bytes kept: a 206 must start where they end (else start
 * over), a 200 is the whole file (the kept bytes go). Returns the total size the answer announces.
 */
export async function alignRange(res: RangeAnswer, from: number, writer: BlobWriter, label: string): Promise<number | undefined> {
  if (res.status === 206) {
    const range = parseContentRange(res.headers.get('content-range'))
    if (range?.start !== from) {
      if (from === 0) throw new TransientError(new FerryError('upstream', 'BAD_RANGE', `${label}: the server sent a partial response that was not asked for`))
      await writer.truncate()
      throw new RestartSignal()
    }
    return range.total
  }
  if (from > 0) await writer.truncate()
  return contentLength(res)
}

export function contentLength(res: RangeAnswer): number | undefined {
  const value = res.headers.get('content-length')
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined
}

/**
 * Appends a response body to the kept bytes; a body that ends before `total` (when known) is a
 * transient TRUNCATED failure, so the retry resumes from where it stopped.
 */
export async function appendBody(writer: BlobWriter, body: AsyncIterable<Uint8Array>, total: number | undefined, label: string, options: AppendOptions): Promise<void> {
  await writer.append(body, options)
  if (total !== undefined && writer.size < total) {
    throw new TransientError(new FerryError('upstream', 'TRUNCATED', `${label}: the transfer ended after ${writer.size} of ${total} bytes; try again later`))
  }
}

export interface ResumableDownload {
  digest: string
  size?: number
  what: string
  policy: RetryPolicy
  classify: (err: unknown) => unknown
  /** cut the bytes into chunks as they arrive (BlobWriter.chunkWith); the result then has `chunks` */
  chunk?: ChunkParams
}

/**
 * The download loop HTTP files and registry blobs share: take over the bytes an earlier attempt
 * (or a killed run) kept, run `attempt(writer, from)` with retries (an attempt that got further
 * does not use one up), then commit the blob when digest and size match. On failure the bytes are
 * parked for a later resume, unless they are wrong or the disk is full.
 */
export async function downloadResumable(store: BlobStore, job: ResumableDownload, attempt: (writer: BlobWriter, from: number) => Promise<void>): Promise<BlobInfo> {
  const writer = await store.claimPartial(job.digest)
  if (job.chunk) writer.chunkWith(job.chunk)
  let committing = false
  try {
    await retryInto(writer, job, attempt)
    committing = true
    return await store.commit(writer, {digest: job.digest, size: job.size, what: job.what})
  } catch (err) {
    if (!committing) {
      const keep = !(err instanceof FerryError && (err.exit === ExitCode.integrity || err.exit === ExitCode.io))
      await (keep ? store.park(writer, job.digest) : store.discard(writer))
    }
    throw err
  }
}

/**
 * The same loop into a writer the caller owns (a region of a bundle archive being assembled):
 * retries, resumes from the bytes written, then checks digest and size. Nothing is parked: on a
 * failure the caller throws the whole archive away.
 */
export async function downloadInto(writer: BlobWriter, job: ResumableDownload, attempt: (writer: BlobWriter, from: number) => Promise<void>): Promise<BlobInfo> {
  await retryInto(writer, job, attempt)
  return checkBlob(await writer.finish(), {digest: job.digest, size: job.size}, job.what)
}

/** Runs attempts until the writer holds the whole blob; an attempt that got further does not use up a retry. */
async function retryInto(writer: BlobWriter, job: ResumableDownload, attempt: (writer: BlobWriter, from: number) => Promise<void>): Promise<void> {
  let furthest = writer.size
  const progressed = () => {
    const moved = writer.size > furthest
    furthest = Math.max(furthest, writer.size)
    return moved
  }
  const once = async () => {
    if (job.size !== undefined && writer.size > job.size) await writer.truncate()
    if (job.size !== undefined && writer.size === job.size) return
    await attempt(writer, writer.size)
  }
  await withRetries(job.policy, job.classify, once, progressed)
}
