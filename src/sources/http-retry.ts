import {setTimeout as sleep} from 'node:timers/promises'
import {FerryError} from '../errors.js'
import {interruption, throwIfInterrupted} from '../interrupt.js'
import {IdleTimeout, ProxyFailure, RedirectError} from './net/net-errors.js'

/** Network error codes that mean the host could not be reached at all. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN'])

/** Longest wait a server's Retry-After may impose between two attempts. */
const MAX_RETRY_AFTER_MS = 60_000

/**
 * A failure worth another attempt. `final` is the error reported if no attempt is left;
 * `retryAfterMs` is the server's own request to wait (Retry-After).
 */
export class TransientError extends Error {
  constructor(
    readonly final: FerryError,
    readonly retryAfterMs?: number,
  ) {
    super(final.message, {cause: final.cause})
  }
}

/** Thrown by an attempt that must simply run again from a new starting point (not a failure). */
export class RestartSignal extends Error {}

export interface RetryPolicy {
  retries: number
  backoffMs: number
}

/** Labels a URL in messages: `item: url` or just the URL. */
export const describe = (url: string, item?: string) => (item ? `${item} (${url})` : url)

/** Maps an error thrown while talking to a server into a transient error, or a final FerryError. */
export function classifyNetworkError(err: unknown, url: string, item: string | undefined, timeoutMs: number): TransientError | FerryError | unknown {
  if (err instanceof FerryError || err instanceof TransientError || err instanceof RestartSignal) return err
  const label = describe(url, item)
  if (err instanceof IdleTimeout) {
    return new TransientError(new FerryError('upstream', 'TIMEOUT', `${label}: no data for ${Math.round(timeoutMs / 1000)}s; the server or network stalled, try again later`))
  }
  if (err instanceof ProxyFailure) {
    // A proxy that wants other credentials will not change its mind; one out of reach may come back.
    if (err.auth) return new FerryError('upstream', 'PROXY_AUTH', `${label}: ${err.message}`, {cause: err, details: {proxy: err.proxy}})
    return new TransientError(new FerryError('upstream', 'PROXY_FAILED', `${label}: ${err.message}; check --proxy, HTTPS_PROXY / HTTP_PROXY and NO_PROXY`, {cause: err, details: {proxy: err.proxy}}))
  }
  if (err instanceof RedirectError) {
    if (err.type === 'max-redirect') return new FerryError('upstream', 'TOO_MANY_REDIRECTS', `${label}: ${err.message}; check the URL`, {cause: err})
    return new FerryError('upstream', 'BAD_REDIRECT', `${label}: ${err.message}`, {cause: err})
  }
  const e = err as {code?: string; errno?: string; message?: string}
  const code = e.code ?? e.errno
  if (code && UNREACHABLE_CODES.has(code)) {
    const host = safeHost(url)
    return new TransientError(
      new FerryError('upstream', 'UNREACHABLE', `${label}: cannot reach ${host} (${code}); check the network, the proxy or the mirror URL`, {cause: err}),
    )
  }
  if (err instanceof Error) {
    return new TransientError(new FerryError('upstream', 'NETWORK_ERROR', `${label}: transfer failed (${code ?? err.message}); try again later`, {cause: err}))
  }
  return err
}

/** The error for an HTTP status that is not success: transient for 408, 429 and 5xx, final otherwise. */
export function statusError(status: number, statusText: string, retryAfter: string | null, url: string, item?: string): TransientError | FerryError {
  const label = describe(url, item)
  const error = new FerryError('upstream', `HTTP_${status}`, `${label}: server answered ${status} ${statusText}`.trimEnd() + hint(status), {
    details: {status, url},
  })
  if (status === 408 || status === 429 || status >= 500) return new TransientError(error, parseRetryAfter(retryAfter))
  return error
}

function hint(status: number): string {
  if (status === 404 || status === 410) return '; check the URL, the version or the mirror'
  if (status === 401 || status === 403) return '; the server refused access, check the URL and credentials'
  if (status >= 500 || status === 429) return '; the server is failing or busy, try again later'
  return ''
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.min(Math.max(seconds, 0) * 1000, MAX_RETRY_AFTER_MS)
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.min(Math.max(at - Date.now(), 0), MAX_RETRY_AFTER_MS)
}

function safeHost(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return url
  }
}

/**
 * Runs `attempt` until it succeeds, a final error occurs, or `retries` more attempts have failed.
 * Waits between attempts grow exponentially from `backoffMs` with jitter. `progressed()` tells
 * whether the failed attempt moved the work forward; such an attempt does not use up a retry.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  classify: (err: unknown) => unknown,
  attempt: () => Promise<T>,
  progressed: () => boolean = () => false,
): Promise<T> {
  let failures = 0
  for (;;) {
    try {
      return await attempt()
    } catch (raw) {
      // A stopped run is not a failed transfer: no retry, and the bytes kept are parked as they are.
      throwIfInterrupted()
      if (raw instanceof RestartSignal) continue
      const err = classify(raw)
      if (!(err instanceof TransientError)) throw err
      if (progressed()) failures = 0
      if (failures >= policy.retries) throw err.final
      const backoff = policy.backoffMs * 2 ** failures * (0.5 + Math.random() / 2)
      failures++
      await sleep(Math.max(backoff, err.retryAfterMs ?? 0), undefined, {signal: interruption}).catch(throwIfInterrupted)
    }
  }
}
