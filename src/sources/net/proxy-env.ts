import {isIP} from 'node:net'
import {usageError} from '../../errors.js'

/**
 * Which proxy a request goes through, read the way curl reads it: `https_proxy` / `HTTPS_PROXY` for
 * https URLs, `http_proxy` / `HTTP_PROXY` for http URLs, `all_proxy` / `ALL_PROXY` for either, the
 * lower-case name first; `--proxy URL` stands for all of them. `no_proxy` / `NO_PROXY` names hosts
 * reached directly, whichever proxy is set: `*` (every host), host names (a name covers its
 * subdomains: `example.com` and `.example.com` both match `a.example.com`), IP addresses and CIDR
 * ranges (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port` (`[::1]:5000` for IPv6). Names
 * are not resolved to match an IP entry, as in curl.
 */
export interface ProxySettings {
  http?: URL
  https?: URL
  noProxy: NoProxy
}

type Env = Record<string, string | undefined>

let processFlag: string | undefined

/**
 * Makes `value` (a command's `--proxy`) the proxy of every request this process makes from now
 * on, as if each caller had passed it; checked first, so a bad URL is exit 2 before any work.
 */
export function useProxyFlag(value: string | undefined): void {
  if (value !== undefined && value.trim() !== '') parseProxyUrl(value, '--proxy')
  processFlag = value
}

/** The `--proxy` value in force for this process, if any. */
export function proxyFlagInForce(): string | undefined {
  return processFlag
}

/** The settings in force: `flag` (a `--proxy` value, by default the process's) over the environment. */
export function proxySettings(flag: string | undefined = processFlag, env: Env = process.env): ProxySettings {
  const read = (...names: string[]) => names.map((n) => env[n]).find((v) => v !== undefined && v.trim() !== '')
  const all = read('all_proxy', 'ALL_PROXY')
  const from = (value: string | undefined, source: string) => (value === undefined ? undefined : parseProxyUrl(value, source))
  if (flag !== undefined && flag.trim() !== '') {
    const url = parseProxyUrl(flag, '--proxy')
    return {http: url, https: url, noProxy: parseNoProxy(read('no_proxy', 'NO_PROXY') ?? '')}
  }
  return {
    http: from(read('http_proxy', 'HTTP_PROXY') ?? all, 'http_proxy'),
    https: from(read('https_proxy', 'HTTPS_PROXY') ?? all, 'https_proxy'),
    noProxy: parseNoProxy(read('no_proxy', 'NO_PROXY') ?? ''),
  }
}

/** A proxy URL as curl takes it: no scheme means http://; http and https proxies only. */
export function parseProxyUrl(value: string, source: string): URL {
  const text = value.trim()
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`)
  } catch {
    throw usageError('BAD_PROXY', `${source}: "${redactText(text)}" is not a proxy URL; give one such as http://proxy.example.com:3128`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError('BAD_PROXY', `${source}: ${redactProxy(url)}: only http:// and https:// proxies are supported; give the proxy as http://host:port`)
  }
  return url
}

/** The proxy for `target`, or undefined when it is reached directly. */
export function proxyFor(settings: ProxySettings, target: URL): URL | undefined {
  const proxy = target.protocol === 'https:' ? settings.https : settings.http
  if (!proxy || bypassed(settings.noProxy, target)) return undefined
  return proxy
}

/** A proxy URL fit for messages: the password (and a user alone) replaced by `***`. */
export function redactProxy(url: URL): string {
  if (!url.username && !url.password) return url.origin
  return `${url.protocol}//${url.password ? `${decodeURIComponent(url.username)}:***` : '***'}@${url.host}`
}

const redactText = (text: string) => text.replace(/\/\/[^@/]*@/, '//***@')

interface NoProxyEntry {
  host?: string
  /** an address range: the address bytes and how many leading bits must match */
  net?: {bytes: number[]; bits: number}
  port?: number
}

export interface NoProxy {
  all: boolean
  entries: NoProxyEntry[]
}

export function parseNoProxy(value: string): NoProxy {
  const entries: NoProxyEntry[] = []
  let all = false
  for (const raw of value.split(',')) {
    const item = raw.trim().toLowerCase()
    if (!item) continue
    if (item === '*') {
      all = true
      continue
    }
    const [hostPart, portPart] = splitPort(item)
    const port = portPart === undefined ? undefined : Number(portPart)
    const [addr, bits] = hostPart.split('/')
    const bytes = addressBytes(addr)
    if (bytes) {
      const width = bytes.length * 8
      const prefix = bits === undefined ? width : Number(bits)
      if (Number.isInteger(prefix) && prefix >= 0 && prefix <= width) entries.push({net: {bytes, bits: prefix}, port})
      continue
    }
    entries.push({host: hostPart.replace(/^\*?\./, '').replace(/\.$/, ''), port})
  }
  return {all, entries}
}

/** `host:port`, `[v6]:port`, or a bare IPv6 address (its colons are not a port). */
function splitPort(item: string): [string, string | undefined] {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(item)
  if (bracketed) return [bracketed[1], bracketed[2]]
  if (isIP(item.split('/')[0]) === 6) return [item, undefined]
  const m = /^([^:]+):(\d+)$/.exec(item)
  return m ? [m[1], m[2]] : [item, undefined]
}

function bypassed(noProxy: NoProxy, target: URL): boolean {
  if (noProxy.all) return true
  const host = target.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase()
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80))
  const bytes = addressBytes(host)
  return noProxy.entries.some((e) => {
    if (e.port !== undefined && e.port !== port) return false
    if (e.net) return bytes !== undefined && inRange(bytes, e.net)
    return e.host !== undefined && (host === e.host || host.endsWith(`.${e.host}`))
  })
}

/** The bytes of an IPv4 or IPv6 address literal; undefined for a host name. */
function addressBytes(text: string): number[] | undefined {
  const kind = isIP(text)
  if (kind === 4) return text.split('.').map(Number)
  if (kind !== 6) return undefined
  let t = text
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t)
  if (v4) {
    const [a, b, c, d] = v4[1].split('.').map(Number)
    t = t.slice(0, -v4[1].length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, tail] = t.split('::')
  const left = head ? head.split(':') : []
  const right = tail === undefined ? [] : tail ? tail.split(':') : []
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
  return groups.flatMap((g) => {
    const n = parseInt(g, 16)
    return [n >> 8, n & 0xff]
  })
}

function inRange(bytes: number[], net: {bytes: number[]; bits: number}): boolean {
  if (bytes.length !== net.bytes.length) return false
  for (let bit = 0; bit < net.bits; bit += 8) {
    const mask = net.bits - bit >= 8 ? 0xff : (0xff << (8 - (net.bits - bit))) & 0xff
    if ((bytes[bit / 8] & mask) !== (net.bytes[bit / 8] & mask)) return false
  }
  return true
}
