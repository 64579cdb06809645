import {execFile, type ExecFileException} from 'node:child_process'
import {z} from 'zod'
import {FerryError, usageError} from '../../errors.js'
import {DOCKER_HUB} from './reference.js'

/** A helper waiting on a prompt nobody sees must not hang a scheduled job. */
const HELPER_TIMEOUT_MS = 30_000

/** What docker's credential helpers print (and exit non-zero with) when they hold nothing for a server. */
const NOT_FOUND = 'credentials not found in native keychain'

/** The answer of `docker-credential-NAME get` (docker-credential-helpers' `Credentials`). */
const HelperAnswer = z.object({
  ServerURL: z.string().optional(),
  Username: z.string().default(''),
  Secret: z.string().default(''),
})

/** Where a helper was named: the auth file and the key that named it, for messages. */
export interface HelperOrigin {
  file: string
  field: 'credHelpers' | 'credsStore'
}

/** Answers, in flight or done, per helper and server: one keychain lookup per run, however many images. */
const answers = new Map<string, Promise<{username: string; password: string} | undefined>>()

/** The program that implements helper `name`. */
export const helperProgram = (name: string) => `docker-credential-${name}`

/** The server address docker hands to helpers: the registry host, or Docker Hub's legacy index URL. */
export function helperServerAddress(registry: string): string {
  return registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry
}

/**
 * Runs `docker-credential-NAME get` for `registry` (the protocol docker, podman and skopeo share):
 * the server address on stdin, JSON `{ServerURL, Username, Secret}` on stdout. `undefined` when the
 * helper holds nothing for the server, so the caller looks further.
 */
export function helperCredentials(name: string, registry: string, origin: HelperOrigin): Promise<{username: string; password: string} | undefined> {
  const key = `${name}\0${registry}`
  let pending = answers.get(key)
  if (!pending) {
    pending = askHelper(name, registry, origin)
    answers.set(key, pending)
    pending.catch(() => answers.delete(key))
  }
  return pending
}

interface HelperRun {
  error: ExecFileException | null
  stdout: string
  stderr: string
}

function runHelper(program: string, server: string): Promise<HelperRun> {
  return new Promise((resolve) => {
    const child = execFile(program, ['get'], {timeout: HELPER_TIMEOUT_MS, maxBuffer: 1 << 20, encoding: 'utf8'}, (error, stdout, stderr) =>
      resolve({error, stdout, stderr}),
    )
    // A helper may exit without reading its input; that is its answer, not a broken pipe to report.
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(server)
  })
}

async function askHelper(name: string, registry: string, origin: HelperOrigin): Promise<{username: string; password: string} | undefined> {
  const program = helperProgram(name)
  const named = `${origin.file} names ${program} in ${origin.field}${origin.field === 'credHelpers' ? ` for ${registry}` : ''}`
  if (!name || name.includes('/')) throw usageError('BAD_AUTH_FILE', `${named}, which is not a helper name; fix that entry`)
  const {error, stdout, stderr} = await runHelper(program, helperServerAddress(registry))
  if (error?.code === 'ENOENT') throw usageError('CREDENTIAL_HELPER_MISSING', `${named}, but it is not on PATH; install it or remove that entry`)
  if (error?.code === 'EACCES') throw usageError('CREDENTIAL_HELPER_MISSING', `${named}, but it is not executable; fix its permissions or remove that entry`)
  if (error) {
    if (stdout.includes(NOT_FOUND)) return undefined
    if (error.killed) throw helperFailed(program, registry, `gave no answer within ${HELPER_TIMEOUT_MS / 1000} s (is it waiting for a prompt?)`)
    const said = firstLine(stderr) || firstLine(stdout) || `exit code ${error.code}`
    throw helperFailed(program, registry, `failed: ${said}`)
  }
  let answer: z.infer<typeof HelperAnswer>
  try {
    answer = HelperAnswer.parse(JSON.parse(stdout))
  } catch {
    throw helperFailed(program, registry, `answered something other than credentials JSON: ${firstLine(stdout) || '(nothing)'}`)
  }
  if (!answer.Username && !answer.Secret) return undefined
  return {username: answer.Username, password: answer.Secret}
}

const firstLine = (text: string) => text.trim().split('\n')[0]?.trim().slice(0, 200) ?? ''

/** A helper that ran and failed: the credential store behind it (keychain, cloud login) did not answer. */
function helperFailed(program: string, registry: string, what: string): FerryError {
  return new FerryError('upstream', 'CREDENTIAL_HELPER_FAILED', `${program} ${what}, asked for ${registry}; check it with: echo ${helperServerAddress(registry)} | ${program} get`)
}
