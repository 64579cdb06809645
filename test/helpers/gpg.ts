// Real gpg for the tests: a private GNUPGHOME per test file, keys made in batch mode, sign and verify.
import {spawn, spawnSync} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export interface GpgResult {
  code: number | null
  stdout: Buffer
  stderr: string
}

export interface GpgHome {
  home: string
  /** Runs gpg against this home (batch, no tty); `input` goes to stdin. */
  run(args: string[], input?: Uint8Array | string): Promise<GpgResult>
  /** Makes a key without passphrase and returns its primary fingerprint. */
  generateKey(opts: {name: string; email?: string; algo?: 'ed25519' | 'rsa3072'; signSubkey?: boolean}): Promise<string>
  exportPublic(fingerprint: string, opts?: {armor?: boolean}): Promise<Buffer>
  import(file: string): Promise<void>
  /** Detached signature of a file, armored or binary; returns the signature's path. */
  signDetached(fingerprint: string, file: string, opts?: {armor?: boolean}): Promise<string>
  /** `gpg --verify`; `valid` lists the fingerprints of VALIDSIG status lines (primary key fingerprints). */
  verify(signatureFile: string, dataFile: string): Promise<{ok: boolean; valid: string[]; output: string}>
  cleanup(): Promise<void>
}

export async function makeGnupgHome(): Promise<GpgHome> {
  // Short path: gpg-agent's socket lives in the home and Unix socket paths are limited to ~108 bytes.
  const home = await mkdtemp(join(tmpdir(), 'fgpg-'))
  const run = (args: string[], input?: Uint8Array | string) => runGpg(['--homedir', home, '--batch', '--no-tty', ...args], input)
  const must = async (args: string[], input?: Uint8Array | string) => {
    const r = await run(args, input)
    if (r.code !== 0) throw new Error(`gpg ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return r
  }
  return {
    home,
    run,
    async generateKey({name, email, algo = 'ed25519', signSubkey = false}) {
      const primary = algo === 'ed25519' ? ['Key-Type: eddsa', 'Key-Curve: ed25519'] : ['Key-Type: rsa', 'Key-Length: 3072']
      const params = [
        '%no-protection',
        ...primary,
        'Key-Usage: sign',
        `Name-Real: ${name}`,
        ...(email ? [`Name-Email: ${email}`] : []),
        'Expire-Date: 0',
        '%commit',
        '',
      ].join('\n')
      const r = await must(['--status-fd', '2', '--gen-key'], params)
      const fpr = /KEY_CREATED \w ([0-9A-F]{40})/.exec(r.stderr)?.[1]
      if (!fpr) throw new Error(`gpg made no key: ${r.stderr}`)
      if (signSubkey) await must(['--passphrase', '', '--pinentry-mode', 'loopback', '--quick-add-key', fpr, algo === 'ed25519' ? 'ed25519' : 'rsa3072', 'sign', '0'])
      return fpr
    },
    async exportPublic(fingerprint, {armor = true} = {}) {
      return (await must([...(armor ? ['--armor'] : []), '--export', fingerprint])).stdout
    },
    async import(file) {
      await must(['--import', file])
    },
    async signDetached(fingerprint, file, {armor = true} = {}) {
      const out = `${file}.${armor ? 'asc' : 'sig'}`
      await must(['--yes', '--local-user', fingerprint, ...(armor ? ['--armor'] : []), '--output', out, '--detach-sign', file])
      return out
    },
    async verify(signatureFile, dataFile) {
      const r = await run(['--status-fd', '1', '--verify', signatureFile, dataFile])
      const status = r.stdout.toString('utf8')
      const valid = [...status.matchAll(/^\[GNUPG:\] VALIDSIG (?:\S+ ){9}([0-9A-F]{40})/gm)].map((m) => m[1])
      return {ok: r.code === 0, valid, output: status + r.stderr}
    },
    async cleanup() {
      spawnSync('gpgconf', ['--homedir', home, '--kill', 'all'])
      await rm(home, {recursive: true, force: true})
    },
  }
}

function runGpg(args: string[], input?: Uint8Array | string): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', args, {stdio: ['pipe', 'pipe', 'pipe']})
    const out: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout: Buffer.concat(out), stderr}))
    child.stdin.end(input)
  })
}

/** Writes bytes to a new file in `dir` and returns its path. */
export async function writeBytes(dir: string, name: string, data: Uint8Array | string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, data)
  return path
}
