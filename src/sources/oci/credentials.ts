import {readFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {usageError} from '../../ui/errors.js'
import {DOCKER_HUB} from './reference.js'

export interface Credentials {
  username: string
  password: string
  /** the file they came from, for messages */
  from: string
}

const HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com', DOCKER_HUB])

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

function decode(entry: {auth?: string; username?: string; password?: string}, file: string, key: string): Omit<Credentials, 'from'> | undefined {
  if (entry.username && entry.password !== undefined) return {username: entry.username, password: entry.password}
  if (!entry.auth) return undefined
  const text = Buffer.from(entry.auth, 'base64').toString('utf8')
  const colon = text.indexOf(':')
  if (colon < 0) throw usageError('BAD_AUTH_FILE', `${file}: the "auth" of ${key} is not base64 of "user:password"`)
  return {username: text.slice(0, colon), password: text.slice(colon + 1)}
}

/**
 * Basic-auth credentials for `registry` (host[:port]) and `repository`, from the first auth
 * file that has an entry for them; a `host/namespace` entry beats a bare host entry.
 */
export async function findCredentials(registry: string, repository: string, files = authFiles()): Promise<Credentials | undefined> {
  const target = `${HUB_ALIASES.has(registry) ? DOCKER_HUB : registry}/${repository}`
  for (const file of files) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch {
      continue
    }
    let auths: Record<string, {auth?: string; username?: string; password?: string}>
    try {
      auths = (JSON.parse(text) as {auths?: typeof auths}).auths ?? {}
    } catch {
      throw usageError('BAD_AUTH_FILE', `${file} is not valid JSON; fix or remove it`)
    }
    let best: {len: number; creds: Omit<Credentials, 'from'>} | undefined
    for (const [key, entry] of Object.entries(auths)) {
      const k = normaliseKey(key)
      if (target !== k && !target.startsWith(`${k}/`)) continue
      const creds = decode(entry ?? {}, file, key)
      if (creds && (!best || k.length > best.len)) best = {len: k.length, creds}
    }
    if (best) return {...best.creds, from: file}
  }
  return undefined
}
