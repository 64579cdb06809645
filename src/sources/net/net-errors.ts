/** What a request can fail with besides a plain socket error; classified in http-retry.ts. */

/** Thrown when the idle timer of a request fired (no headers, or a gap in the body). */
export class IdleTimeout extends Error {}

/** A proxy refused or could not be reached; `proxy` is safe to print (credentials redacted). */
export class ProxyFailure extends Error {
  constructor(
    message: string,
    readonly proxy: string,
    /** 407: the proxy wants other credentials; otherwise it could not be reached or open a tunnel */
    readonly auth: boolean,
    readonly code?: string,
    options?: {cause?: unknown},
  ) {
    super(message, options)
  }
}

/** Too many redirects, or one to a place that cannot be fetched. */
export class RedirectError extends Error {
  constructor(
    message: string,
    readonly type: 'max-redirect' | 'invalid-redirect',
  ) {
    super(message)
  }
}
