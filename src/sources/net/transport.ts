import {STATUS_CODES} from 'node:http'
import type {Agent, Dispatcher, ProxyAgent} from 'undici'
import {interruption} from '../../interrupt.js'
import {IdleTimeout, ProxyFailure, RedirectError} from './net-errors.js'
import {withBaselineParser} from './parser-tier.js'
import {bodyBytesRead} from './read-buffers.js'
import {proxyFlagInForce, proxyFor, proxySettings, type ProxySettings, redactProxy} from './proxy-env.js'

/**
 * Every HTTP request Ferry makes goes through a Transport: one undici connection pool per origin
 * (or per proxy), the proxy chosen per URL (see proxy-env.ts), redirects followed here so the
 * final URL is known and the Authorization header never reaches another host.
 */
export interface TransportOptions {
  proxy: ProxySettings
  /** CA certificates (PEM) to trust instead of the defaults, and whether to check server certificates */
  tls?: {ca?: string[]; rejectUnauthorized?: boolean}
  /** connections per origin; default 16 */
  connections?: number
}

export interface SendOptions {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'PATCH'
  headers?: Record<string, string>
  /**
   * a stream or iterable body is sent as it is read, with backpressure; such a request is never redirected.
   * A chunk may still be queued for the socket after the next one is asked for: its memory must not be reused.
   */
  body?: string | Buffer | AsyncIterable<Uint8Array>
  signal?: AbortSignal
  /** no headers, or no body bytes, for this long (ms) fails the request with an IdleTimeout; default 60 000 */
  idleMs?: number
  /** redirects followed at most (default 10); 0 hands the redirect answer back */
  follow?: number
}

/** An answer; read its body once (iterate `body`, or text/json/arrayBuffer), or `close` it. */
export interface HttpAnswer {
  status: number
  statusText: string
  ok: boolean
  /** the URL that answered, after redirects */
  url: string
  headers: {get(name: string): string | null}
  /** the body, chunk by chunk; chunks are the reader's to keep */
  body: AsyncIterable<Buffer>
  text(): Promise<string>
  json(): Promise<unknown>
  arrayBuffer(): Promise<ArrayBuffer>
  /** releases the connection without reading the rest of the body */
  close(): void
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])
/** Errors that mean the socket to the proxy itself could not be opened. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ECONNRESET', 'UND_ERR_CONNECT_TIMEOUT'])

const shared = new Map<string, Transport>()

/** undici is loaded with the first request: commands that make none never pay for it. */
let undici: Promise<typeof import('undici')> | undefined
const loadUndici = () => (undici ??= import('undici'))

/** The transport for requests that need no TLS options of their own (HTTP files): one per `--proxy` value. */
export function sharedTransport(flag: string | undefined = proxyFlagInForce()): Transport {
  const key = flag ?? ''
  let t = shared.get(key)
  if (!t) shared.set(key, (t = new Transport({proxy: proxySettings(flag)})))
  return t
}

export class Transport {
  private direct?: Agent
  private readonly proxies = new Map<string, ProxyAgent>()

  constructor(readonly options: TransportOptions) {}

  /** The pool for `url`: direct, or through the proxy that the settings give for it. */
  private dispatcher(url: URL, {Agent, ProxyAgent}: typeof import('undici')): {dispatcher: Dispatcher; proxy?: URL} {
    const {tls, connections = 16} = this.options
    const proxy = proxyFor(this.options.proxy, url)
    if (!proxy) {
      this.direct ??= new Agent({connections, connect: {...tls}})
      return {dispatcher: this.direct}
    }
    let agent = this.proxies.get(proxy.href)
    if (!agent) {
      // Plain http is forwarded as curl does (absolute URL to the proxy); https goes through CONNECT.
      // Credentials as curl sends them: a user without a password is "user:".
      const token = proxy.username ? `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}` : undefined
      agent = new ProxyAgent({uri: proxy.origin, ...(token ? {token} : {}), proxyTunnel: false, connections, requestTls: {...tls}})
      this.proxies.set(proxy.href, agent)
    }
    return {dispatcher: agent, proxy}
  }

  /** One request, following redirects; rejects only when no answer came (network, proxy, timeout). */
  async send(url: string, opts: SendOptions = {}): Promise<HttpAnswer> {
    let target = new URL(url)
    let method = opts.method ?? 'GET'
    let headers = {...opts.headers}
    let body = opts.body
    const follow = opts.follow ?? 10
    for (let hop = 0; ; hop++) {
      const answer = await this.once(target, method, headers, body, opts)
      const location = answer.headers.get('location')
      const streamed = body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)
      if (!REDIRECTS.has(answer.status) || !location || follow === 0 || streamed) return answer
      answer.close()
      if (hop >= follow) throw new RedirectError(`more than ${follow} redirects`, 'max-redirect')
      const next = new URL(location, target)
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RedirectError(`redirected to ${next.protocol} URL ${next.href}`, 'invalid-redirect')
      // Credentials are for the host they were given for, never for the one a redirect names.
      if (next.origin !== target.origin) headers = withoutHeaders(headers, ['authorization', 'cookie'])
      if (answer.status === 303 || ((answer.status === 301 || answer.status === 302) && method === 'POST')) {
        if (method !== 'HEAD') method = 'GET'
        body = undefined
        headers = withoutHeaders(headers, ['content-length', 'content-type'])
      }
      target = next
    }
  }

  private async once(target: URL, method: NonNullable<SendOptions['method']>, headers: Record<string, string>, body: SendOptions['body'], opts: SendOptions): Promise<HttpAnswer> {
    const lib = await loadUndici()
    const {dispatcher, proxy} = this.dispatcher(target, lib)
    const idle = opts.idleMs ?? 60_000
    // Ctrl-C stops every request and body in flight (see interrupt.ts).
    const signal = opts.signal ? AbortSignal.any([opts.signal, interruption]) : interruption
    let res: Dispatcher.ResponseData
    try {
      // undici takes async iterables too (sent chunk by chunk, waiting for the socket to drain), though its types do not say so
      res = await withBaselineParser(() => lib.request(target, {dispatcher, method, headers, body: body as Buffer | undefined, signal, headersTimeout: idle, bodyTimeout: idle}))
    } catch (err) {
      throw explain(err, proxy)
    }
    if (proxy && (res.statusCode === 407 || (res.statusCode === 401 && proxy.username && !res.headers.via))) {
      // Some proxies (tinyproxy 1.11) answer wrong credentials with 401, not 407. A proxy adds Via
      // to every answer it forwards (RFC 9110, 7.6.3): a 401 without one is the proxy's own.
      res.body.destroy()
      throw proxyRefused(proxy, res.statusCode)
    }
    return answerOf(res, target.href, proxy)
  }

  /** Closes every idle connection (the process can then exit without waiting for keep-alive timers). */
  async close(): Promise<void> {
    await Promise.all([this.direct?.close(), ...[...this.proxies.values()].map((p) => p.close())])
  }
}

function withoutHeaders(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !names.includes(k.toLowerCase())))
}

function proxyRefused(proxy: URL, status: number): ProxyFailure {
  const name = redactProxy(proxy)
  if (status === 407 || status === 401) {
    const given = proxy.username ? ' in its URL' : ' (none were given: put them in the proxy URL, http://user:password@host:port)'
    return new ProxyFailure(`the proxy ${name} refused the credentials${given} (${status} ${STATUS_CODES[status]})`, name, true, `HTTP_${status}`)
  }
  return new ProxyFailure(`the proxy ${name} could not open a tunnel to the server (it answered ${status})`, name, false, `HTTP_${status}`)
}

/** Names what an undici error means: a stalled transfer, or a proxy that failed. */
function explain(err: unknown, proxy: URL | undefined): unknown {
  const e = err as {code?: string; message?: string}
  if (e.code && TIMEOUT_CODES.has(e.code) && !(proxy && e.code === 'UND_ERR_CONNECT_TIMEOUT')) return new IdleTimeout(e.message)
  if (!proxy) return err
  const tunnel = /Proxy response \((\d+)\)/.exec(e.message ?? '')
  // A CONNECT is answered by the proxy itself: a 401 there is its refusal too.
  if (tunnel) return proxyRefused(proxy, Number(tunnel[1]))
  if (/Proxy Authentication Required/.test(e.message ?? '')) return proxyRefused(proxy, 407)
  if (e.code && CONNECT_CODES.has(e.code)) {
    const name = redactProxy(proxy)
    return new ProxyFailure(`cannot reach the proxy ${name} (${e.code})`, name, false, e.code, {cause: err})
  }
  return err
}

function answerOf(res: Dispatcher.ResponseData, url: string, proxy: URL | undefined): HttpAnswer {
  const {statusCode: status, headers, body} = res
  const guard = <T>(p: Promise<T>) => p.catch((err: unknown) => Promise.reject(explain(err, proxy)))
  return {
    status,
    statusText: STATUS_CODES[status] ?? '',
    ok: status >= 200 && status < 300,
    url,
    headers: {
      get(name: string) {
        const value = headers[name.toLowerCase()]
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value
      },
    },
    body: (async function* () {
      try {
        for await (const chunk of body) {
          bodyBytesRead((chunk as Buffer).length)
          yield chunk as Buffer
        }
      } catch (err) {
        throw explain(err, proxy)
      }
    })(),
    text: () => guard(body.text()),
    json: () => guard(body.json()),
    arrayBuffer: () => guard(body.arrayBuffer()),
    // A short rest is read so the connection can be reused; a long one closes it.
    close: () => void body.dump({limit: 64 << 10}).catch(() => undefined),
  }
}
