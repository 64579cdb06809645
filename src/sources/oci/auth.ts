import {upstreamError} from '../../errors.js'
import type {HttpAnswer} from '../net/transport.js'
import type {Credentials} from './credentials.js'

/** What a registry asked for in its WWW-Authenticate header. */
export type Challenge = {scheme: 'basic'} | {scheme: 'bearer'; realm: string; service?: string; scope?: string}

/** Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header)
  if (!m) return undefined
  const scheme = m[1].toLowerCase()
  if (scheme === 'basic') return {scheme: 'basic'}
  if (scheme !== 'bearer') return undefined
  const params: Record<string, string> = {}
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3]
  if (!params.realm) return undefined
  return {scheme: 'bearer', realm: params.realm, service: params.service, scope: params.scope}
}

/** The reason a registry gave for refusing a request: its JSON `errors`, else the status line. */
export async function registryReason(res: {status: number; statusText: string; text(): Promise<string>}): Promise<string> {
  let text = ''
  try {
    text = (await res.text()).slice(0, 64 << 10)
  } catch {
    text = ''
  }
  try {
    const body = JSON.parse(text) as {errors?: Array<{code?: string; message?: string}>; details?: string}
    const errors = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': ')).filter(Boolean)
    if (errors.length) return errors.join('; ')
    if (body.details) return body.details
  } catch {
    // not JSON: fall back to the status
  }
  const plain = text.trim().split('\n')[0]?.slice(0, 200)
  return `${res.status} ${res.statusText}${plain && !plain.startsWith('<') ? ` (${plain})` : ''}`
}

export const basicHeader = (c: Credentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`

/** Who a request was made as, for messages. */
export function whoIs(creds: Credentials | undefined): string {
  if (!creds) return 'anonymous access'
  return creds.identityToken ? `the identity token from ${creds.from}` : `user ${creds.username} (from ${creds.from})`
}

/** A token service's answer: distribution's `token`, or OAuth2's `access_token`. */
interface TokenAnswer {
  token?: string
  access_token?: string
  expires_in?: number
}

type Send = (url: string, init: {method: 'GET' | 'POST'; headers: Record<string, string>; body?: string}) => Promise<HttpAnswer>

/**
 * Bearer tokens, fetched from the challenge's realm once per scope set and reused until
 * they expire (a token answer says how long it lasts, 60 s when it does not).
 */
export class TokenCache {
  private readonly tokens = new Map<string, Promise<{token: string; until: number}>>()

  constructor(private readonly send: Send) {}

  async token(challenge: Extract<Challenge, {scheme: 'bearer'}>, scopes: string[], creds: Credentials | undefined, registry: string): Promise<string> {
    const key = `${challenge.realm}|${challenge.service ?? ''}|${[...scopes].sort().join(' ')}|${creds?.username ?? ''}|${creds?.identityToken ?? ''}`
    const cached = this.tokens.get(key)
    if (cached) {
      const got = await cached.catch(() => undefined)
      if (got && got.until > Date.now()) return got.token
    }
    const pending = this.fetchToken(challenge, scopes, creds, registry)
    this.tokens.set(key, pending)
    pending.catch(() => this.tokens.delete(key))
    return (await pending).token
  }

  /**
   * Asks the realm for a token: a GET with basic auth (or none) as distribution's token
   * protocol has it, or, for an identity token, an OAuth2 refresh-token grant (a form POST) as
   * docker sends it to Azure Container Registry, Docker Hub and other OAuth2 token services.
   */
  private async fetchToken(challenge: Extract<Challenge, {scheme: 'bearer'}>, scopes: string[], creds: Credentials | undefined, registry: string) {
    let res: HttpAnswer
    if (creds?.identityToken) {
      const form = new URLSearchParams({grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'ferry'})
      if (challenge.service) form.set('service', challenge.service)
      if (scopes.length) form.set('scope', scopes.join(' '))
      res = await this.send(challenge.realm, {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: form.toString()})
    } else {
      const url = new URL(challenge.realm)
      if (challenge.service) url.searchParams.set('service', challenge.service)
      for (const s of scopes) url.searchParams.append('scope', s)
      res = await this.send(url.toString(), {method: 'GET', headers: creds ? {Authorization: basicHeader(creds)} : {}})
    }
    if (!res.ok) {
      const reason = await registryReason(res)
      throw upstreamError('AUTH_FAILED', `${registry}: the token service refused ${whoIs(creds)}: ${reason}; check the credentials (docker/podman/skopeo login, or REGISTRY_AUTH_FILE)`)
    }
    const body = (await res.json()) as TokenAnswer
    const token = body.token ?? body.access_token
    if (!token) throw upstreamError('AUTH_FAILED', `${registry}: the token service at ${challenge.realm} answered without a token`)
    // Renew a little early so a token never expires mid-request.
    return {token, until: Date.now() + Math.max((body.expires_in ?? 60) - 10, 5) * 1000}
  }
}
