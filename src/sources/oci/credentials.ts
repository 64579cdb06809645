import {readFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {z} from 'zod'
import {usageError} from '../../errors.js'
import {helperCredentials, helperProgram, type HelperOrigin} from './credential-helper.js'
import {DOCKER_HUB} from './reference.js'

export interface Credentials {
  username: string
  password: string
  /**
   * an identity token (OAuth2 refresh token, as `az acr login` or Docker Desktop store): traded
   * for access tokens at the registry's token service instead of a user name and password
   */
  identityToken?: string
  /** where they came from (an auth file, or a helper and the file naming it), for messages */
  from: string
}

type Found = Omit<Credentials, 'from'>

const HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com', DOCKER_HUB])

/** The user name docker stores an identity (OAuth2 refresh) token under. */
const IDENTITY_TOKEN_USER = '<token>'

/** The parts of docker's config.json and containers' auth.json that hold credentials; the rest is ignored. */
const AuthEntry = z.object({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
})
const AuthFile = z.object({
  auths: z.record(z.string(), AuthEntry.nullable()).optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
  credsStore: z.string().optional(),
})
type AuthFile = z.infer<typeof AuthFile>

/**
 * Auth files in the order podman and skopeo read them: `$REGISTRY_AUTH_FILE`, then
 * `$XDG_RUNTIME_DIR/containers/auth.json`, then docker's `$DOCKER_CONFIG/config.json`
 * (default `~/.docker/config.json`).
 */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = []
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE)
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'))
  files.push(path.join(env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json'))
  return files
}

/** `https://index.docker.io/v1/` → `docker.io`; `host:5000/ns` stays a host with a path. */
function normaliseKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '')
  k = k.replace(/\/v[12]$/, '')
  const slash = k.indexOf('/')
  const host = slash < 0 ? k : k.slice(0, slash)
  return (HUB_ALIASES.has(host) ? DOCKER_HUB : host) + (slash < 0 ? '' : k.slice(slash))
}

/** An auth file's contents; `undefined` when there is no such file (not every tool has logged in). */
async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw usageError('BAD_AUTH_FILE', `${file} is not valid JSON; fix or remove it`)
  }
  const parsed = AuthFile.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw usageError('BAD_AUTH_FILE', `${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}; fix or remove it`)
  }
  return parsed.data
}

function decode(entry: z.infer<typeof AuthEntry>, file: string, key: string): Found | undefined {
  if (entry.identitytoken) return {username: entry.username ?? IDENTITY_TOKEN_USER, password: '', identityToken: entry.identitytoken}
  if (entry.username && entry.password !== undefined) return {username: entry.username, password: entry.password}
  if (!entry.auth) return undefined
  const text = Buffer.from(entry.auth, 'base64').toString('utf8')
  const colon = text.indexOf(':')
  if (colon < 0) throw usageError('BAD_AUTH_FILE', `${file}: the "auth" of ${key} is not base64 of "user:password"`)
  return {username: text.slice(0, colon), password: text.slice(colon + 1)}
}

/** The inline `auths` entry for `target` (host/repository); a `host/namespace` entry beats a bare host entry. */
function inlineCredentials(config: AuthFile, file: string, host: string, target: string): Found | undefined {
  let best: {len: number; creds: Found} | undefined
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const k = normaliseKey(key)
    if (target !== k && !target.startsWith(`${k}/`)) continue
    const creds = decode(entry ?? {}, file, key)
    if (creds && (!best || k.length > best.len)) best = {len: k.length, creds}
  }
  return best?.creds
}

/** The helper `credHelpers` names for `host`; its keys are hosts, with or without a scheme. */
function namedHelper(config: AuthFile, host: string): string | undefined {
  for (const [key, name] of Object.entries(config.credHelpers ?? {})) if (normaliseKey(key) === host) return name
  return undefined
}

async function fromHelper(name: string, host: string, origin: HelperOrigin): Promise<Credentials | undefined> {
  const creds = await helperCredentials(name, host, origin)
  if (!creds) return undefined
  const from = `${helperProgram(name)}, named in ${origin.file}`
  // docker's helpers hand an identity token back under the user name "<token>"
  if (creds.username === IDENTITY_TOKEN_USER) return {username: creds.username, password: '', identityToken: creds.password, from}
  return {...creds, from}
}

/**
 * One file, in docker's order: the helper `credHelpers` names for the host, then the inline
 * `auths` entry, then the default helper `credsStore` (with it set, docker leaves inline entries
 * empty, `{}`, so they fall through to it). A helper that holds nothing for the host falls through too.
 */
async function credentialsIn(config: AuthFile, file: string, host: string, target: string): Promise<Credentials | undefined> {
  const helper = namedHelper(config, host)
  if (helper !== undefined) {
    const creds = await fromHelper(helper, host, {file, field: 'credHelpers'})
    if (creds) return creds
  }
  const inline = inlineCredentials(config, file, host, target)
  if (inline) return {...inline, from: file}
  if (config.credsStore) return fromHelper(config.credsStore, host, {file, field: 'credsStore'})
  return undefined
}

/**
 * Credentials for `registry` (host[:port]) and `repository`, from the first auth file that
 * yields some, through its inline entries or the credential helpers it names.
 */
export async function findCredentials(registry: string, repository: string, files = authFiles()): Promise<Credentials | undefined> {
  const host = HUB_ALIASES.has(registry) ? DOCKER_HUB : registry
  for (const file of files) {
    const config = await readAuthFile(file)
    if (!config) continue
    const creds = await credentialsIn(config, file, host, `${host}/${repository}`)
    if (creds) return creds
  }
  return undefined
}
