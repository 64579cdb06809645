import {readFileSync} from 'node:fs'
import {rootCertificates} from 'node:tls'
import {FerryError, upstreamError, usageError} from '../../errors.js'
import {classifyNetworkError, statusError, withRetries} from '../http-retry.js'
import {proxySettings} from '../net/proxy-env.js'
import {type HttpAnswer, type SendOptions, Transport} from '../net/transport.js'
import {basicHeader, parseChallenge, registryReason, TokenCache, whoIs, type Challenge} from './auth.js'
import {findCredentials, type Credentials} from './credentials.js'
import {DOCKER_HUB} from './reference.js'

/** How Ferry talks to registries; every field optional. */
export interface RegistryOptions {
  /** extra CA certificates (PEM file) trusted besides the system's */
  caFile?: string
  /** registries (host[:port]) whose TLS certificate is not checked and that may answer in plain HTTP */
  insecure?: string[]
  /** auth files to read credentials from (default: REGISTRY_AUTH_FILE, containers auth.json, docker config) */
  authFiles?: string[]
  /** attempts after the first for transient failures; default 4 */
  retries?: number
  backoffMs?: number
  /** abort when no data arrived for this long (ms); default 60 000 */
  timeoutMs?: number
  /** parallel connections per registry; default 16 */
  maxSockets?: number
  /** proxy URL (`--proxy`), over HTTPS_PROXY / HTTP_PROXY; NO_PROXY still applies */
  proxy?: string
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'PATCH'
  headers?: Record<string, string>
  /** a stream or iterable is sent as read, with backpressure; its chunks must stay unchanged until the request ends */
  body?: SendOptions['body']
  /** token scopes beyond `repository:<repo>:pull` */
  push?: boolean
  /** other repositories read in the same request (cross-repository mount) */
  alsoPull?: string[]
  signal?: AbortSignal
}

/** What callers read of an answer. */
export type RegistryAnswer = HttpAnswer

/** Every request: who asks, and the bytes exactly as stored (digests and ranges count them). */
const BASE_HEADERS = {'User-Agent': 'ferry', 'Accept-Encoding': 'identity'}

const TLS_PROTOCOL = /wrong version number|EPROTO|packet length too long|unknown protocol/i
const CERT_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS/

export function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/**
 * One registry (host[:port]): scheme, TLS, auth and retries. HTTPS always, except that a loopback
 * registry or one named `insecure` may answer in plain HTTP (as docker does). Credentials come from
 * the auth files docker, podman and skopeo use; Bearer tokens are fetched per scope and cached.
 */
export class RegistryClient {
  private base?: Promise<string>
  private challenge?: Challenge
  private readonly creds = new Map<string, Promise<Credentials | undefined>>()
  private readonly tokens: TokenCache
  private readonly transport: Transport
  readonly insecure: boolean

  constructor(
    readonly registry: string,
    readonly options: RegistryOptions = {},
  ) {
    this.insecure = (options.insecure ?? []).includes(registry)
    let ca: string[] | undefined
    if (options.caFile) {
      try {
        ca = [...rootCertificates, readFileSync(options.caFile, 'utf8')]
      } catch (err) {
        throw usageError('BAD_CA_FILE', `--ca-file ${options.caFile}: ${(err as Error).message}`)
      }
    }
    this.transport = new Transport({
      proxy: proxySettings(options.proxy),
      tls: {...(ca ? {ca} : {}), rejectUnauthorized: !this.insecure},
      connections: options.maxSockets ?? 16,
    })
    this.tokens = new TokenCache((url, init) => this.raw(url, init))
  }

  /** Where the registry's API lives: Docker Hub's API host differs from its name. */
  private get host(): string {
    return this.registry === DOCKER_HUB ? 'registry-1.docker.io' : this.registry
  }

  get policy() {
    return {retries: this.options.retries ?? 4, backoffMs: this.options.backoffMs ?? 500}
  }

  classify(what: string) {
    return (err: unknown) => classifyNetworkError(err, `${this.registry}`, what, this.options.timeoutMs ?? 60_000)
  }

  private raw(url: string, init: Omit<SendOptions, 'idleMs'>): Promise<HttpAnswer> {
    return this.transport.send(url, {...init, headers: {...BASE_HEADERS, ...init.headers}, idleMs: this.options.timeoutMs ?? 60_000})
  }

  /** `https://host` or, for loopback and insecure registries that speak no TLS, `http://host`. */
  private origin(): Promise<string> {
    this.base ??= withRetries(this.policy, this.classify('the registry'), async () => {
      try {
        const res = await this.raw(`https://${this.host}/v2/`, {method: 'GET'})
        this.challenge = parseChallenge(res.headers.get('www-authenticate'))
        res.close()
        return `https://${this.host}`
      } catch (err) {
        const e = err as {code?: string; message?: string}
        const text = `${e.code ?? ''} ${e.message ?? ''}`
        if ((isLoopback(this.registry) || this.insecure) && TLS_PROTOCOL.test(text)) {
          const res = await this.raw(`http://${this.host}/v2/`, {method: 'GET'})
          this.challenge = parseChallenge(res.headers.get('www-authenticate'))
          res.close()
          return `http://${this.host}`
        }
        if (CERT_CODES.test(e.code ?? '')) {
          throw upstreamError(
            'TLS_UNTRUSTED',
            `${this.registry}: its TLS certificate is not trusted (${e.code}); give its CA with --ca-file, or name it with --insecure-registry ${this.registry}`,
            err,
          )
        }
        throw err
      }
    })
    this.base.catch(() => (this.base = undefined))
    return this.base
  }

  private credentials(repository: string): Promise<Credentials | undefined> {
    let pending = this.creds.get(repository)
    if (!pending) {
      pending = findCredentials(this.registry, repository, this.options.authFiles)
      this.creds.set(repository, pending)
    }
    return pending
  }

  private async authorization(repository: string, opts: RequestOptions): Promise<string | undefined> {
    const c = this.challenge
    if (!c) return undefined
    const creds = await this.credentials(repository)
    if (c.scheme === 'basic') {
      if (creds?.identityToken) {
        throw upstreamError('AUTH_REQUIRED', `${this.registry} asks for a user name and password, but the credentials for it (from ${creds.from}) are an identity token, which only a token service takes; log in with a password or access token`)
      }
      if (!creds) {
        throw upstreamError('AUTH_REQUIRED', `${this.registry} requires credentials for ${repository}: log in with docker, podman or skopeo login, or set REGISTRY_AUTH_FILE`)
      }
      return basicHeader(creds)
    }
    const scopes = [`repository:${repository}:${opts.push ? 'pull,push' : 'pull'}`, ...(opts.alsoPull ?? []).map((r) => `repository:${r}:pull`)]
    return `Bearer ${await this.tokens.token(c, scopes, creds, this.registry)}`
  }

  /**
   * A request under `/v2/<repository>` (or an absolute URL the registry gave, e.g. an upload
   * Location). Answers 401 once by (re)authenticating; a second 401/403 is exit 5 with the reason.
   */
  async request(repository: string, path: string, opts: RequestOptions = {}): Promise<RegistryAnswer> {
    const origin = await this.origin()
    const url = /^https?:\/\//.test(path) ? path : new URL(path, origin).toString()
    const send = async () => {
      const auth = await this.authorization(repository, opts)
      const headers = {...opts.headers, ...(auth ? {Authorization: auth} : {})}
      return this.raw(url, {method: opts.method ?? 'GET', headers, body: opts.body, signal: opts.signal})
    }
    let res = await send()
    if (res.status === 401 && opts.body === undefined) {
      const fresh = parseChallenge(res.headers.get('www-authenticate'))
      const had = this.challenge
      if (fresh) this.challenge = fresh
      const changed = !had || (fresh && (fresh.scheme !== had.scheme || (fresh.scheme === 'bearer' && had.scheme === 'bearer' && fresh.realm !== had.realm)))
      if (changed || fresh?.scheme === 'bearer') {
        res.close()
        res = await send()
      }
    }
    if (res.status === 401 || res.status === 403) {
      const creds = await this.credentials(repository)
      throw new FerryError('upstream', 'AUTH_FAILED', `${this.registry}/${repository}: the registry refused ${whoIs(creds)}: ${await registryReason(res)}; check the credentials (docker/podman/skopeo login, or REGISTRY_AUTH_FILE)`)
    }
    return res
  }

  /** Turns a failed answer into the right error: transient (5xx, 429) for a retry, else final with the registry's reason. */
  async failure(res: RegistryAnswer, what: string): Promise<unknown> {
    const reason = await registryReason(res)
    const err = statusError(res.status, res.statusText, res.headers.get('retry-after'), `${this.registry}`, what)
    if (err instanceof FerryError) {
      const code = res.status === 404 ? 'NOT_FOUND' : `HTTP_${res.status}`
      const hint = res.status === 404 ? '; check the name, the tag and the registry' : ''
      return new FerryError('upstream', code, `${what}: ${this.registry} answered ${reason}${hint}`, {details: {status: res.status}})
    }
    return err
  }
}
