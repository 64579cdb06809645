import {spawn} from 'node:child_process'
import * as openpgp from 'openpgp'
import type {PrivateKey} from 'openpgp'
import {FerryError} from '../errors.js'
import {readKeyFile} from './keys.js'
import {hexId, reason} from './pgp-data.js'

/** One role, two implementations: a key file read by openpgp.js, or a key held by gpg (and its agent, card or HSM). */
export interface Signer {
  /** Primary key fingerprint, 40 uppercase hex digits. */
  readonly fingerprint: string
  /** Binary detached signature packet(s) over `data`, dated `date`. */
  sign(data: Uint8Array, date: Date): Promise<Uint8Array>
}

/** Options that make a v4 EdDSA signature a pure function of key, data and date (no random salt notation). */
const DETERMINISTIC: openpgp.PartialConfig = {nonDeterministicSignaturesViaNotation: false}

/** A signer from a private key file; an encrypted key needs its passphrase. */
export async function fileSigner(keyPath: string, passphrase?: string): Promise<Signer> {
  const privateKeys = (await readKeyFile(keyPath)).filter((k): k is PrivateKey => k.isPrivate())
  if (privateKeys.length === 0) {
    throw new FerryError('usage', 'KEY_NOT_PRIVATE', `${keyPath} holds no private key; signing needs the private key file (NAME.key.asc), not the public one`)
  }
  if (privateKeys.length > 1) {
    throw new FerryError('usage', 'KEY_AMBIGUOUS', `${keyPath} holds ${privateKeys.length} private keys; give a file with exactly one`)
  }
  const key = await unlock(privateKeys[0], keyPath, passphrase)
  const fingerprint = hexId(key.getFingerprint())
  return {
    fingerprint,
    async sign(data, date) {
      if (date < key.getCreationTime()) {
        throw new FerryError(
          'usage',
          'SIGNATURE_DATE_BEFORE_KEY',
          `cannot sign with date ${date.toISOString()}: key ${fingerprint} (${keyPath}) was created later, at ${key.getCreationTime().toISOString()}`,
        )
      }
      const message = await openpgp.createMessage({binary: data})
      try {
        return await openpgp.sign({message, signingKeys: key, detached: true, format: 'binary', date, config: DETERMINISTIC})
      } catch (err) {
        throw new FerryError('trust', 'SIGNING_FAILED', `signing with key ${fingerprint} (${keyPath}) failed: ${reason(err)}`, {cause: err})
      }
    },
  }
}

async function unlock(key: PrivateKey, keyPath: string, passphrase?: string): Promise<PrivateKey> {
  if (key.isDecrypted()) return key
  if (!passphrase) {
    throw new FerryError(
      'usage',
      'KEY_PASSPHRASE_REQUIRED',
      `${keyPath} is protected by a passphrase; put it in an environment variable and name that variable with --passphrase-env VAR`,
    )
  }
  try {
    return await openpgp.decryptKey({privateKey: key, passphrase})
  } catch (err) {
    throw new FerryError('usage', 'KEY_PASSPHRASE_WRONG', `cannot unlock ${keyPath}: ${reason(err)}; check the passphrase`, {cause: err})
  }
}

interface GpgRun {
  code: number | null
  stdout: Buffer
  stderr: string
}

function runGpg(args: string[], input?: Uint8Array): Promise<GpgRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', args, {stdio: ['pipe', 'pipe', 'pipe']})
    const out: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')))
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(new FerryError('usage', 'GPG_NOT_FOUND', 'gpg was not found on PATH; install GnuPG (package gnupg) or sign with a key file (--key FILE)'))
      } else reject(err)
    })
    // gpg may exit before reading all of stdin (unknown key): that EPIPE is reported through its exit code.
    child.stdin.on('error', () => undefined)
    child.on('close', (code) => resolve({code, stdout: Buffer.concat(out), stderr}))
    child.stdin.end(input ? Buffer.from(input.buffer, input.byteOffset, input.byteLength) : undefined)
  })
}

const lastLines = (text: string) => text.trim().split('\n').slice(-3).join(' / ')

/**
 * A signer backed by the system's gpg, so the private key can stay in gpg-agent, on a smartcard or behind an HSM.
 * `fingerprint` may be anything gpg accepts as --local-user; the signer reports the primary key's fingerprint.
 */
export async function gpgSigner(fingerprint: string, opts: {gnupgHome?: string} = {}): Promise<Signer> {
  const base = ['--batch', '--no-tty', ...(opts.gnupgHome ? ['--homedir', opts.gnupgHome] : [])]
  const home = opts.gnupgHome ?? process.env.GNUPGHOME ?? '~/.gnupg'
  const listing = await runGpg([...base, '--with-colons', '--list-secret-keys', '--', fingerprint])
  const primary = /^fpr:(?:[^:]*:){8}([0-9A-F]{40,64}):/m.exec(listing.stdout.toString('utf8'))?.[1]
  if (listing.code !== 0 || !primary) {
    throw new FerryError(
      'usage',
      'GPG_KEY_UNKNOWN',
      `gpg (home ${home}) has no secret key "${fingerprint}"; see the available ones with: gpg --list-secret-keys`,
    )
  }
  return {
    fingerprint: primary,
    async sign(data, date) {
      // gpg takes the signature time from its clock; a frozen fake time makes it the build's own date.
      const when = `${Math.floor(date.getTime() / 1000)}!`
      const args = [...base, '--faked-system-time', when, '--digest-algo', 'SHA512', '--local-user', primary, '--detach-sign', '--output', '-']
      const run = await runGpg(args, data)
      if (run.code !== 0 && /created .* in the future/.test(run.stderr)) {
        throw new FerryError(
          'usage',
          'SIGNATURE_DATE_BEFORE_KEY',
          `cannot sign with date ${date.toISOString()}: gpg key ${primary} was created later than that`,
        )
      }
      if (run.code !== 0 || run.stdout.length === 0) {
        throw new FerryError('trust', 'GPG_SIGN_FAILED', `gpg could not sign with key ${primary}: ${lastLines(run.stderr) || `exit ${run.code}`}`)
      }
      return new Uint8Array(run.stdout)
    },
  }
}

/**
 * Several signers' binary packets as ONE armored PGP SIGNATURE block (bundle.json.asc carries one per signer).
 * The CRC24 line is written because gpg 2.2 misreads some armor without it.
 */
export function armorSignatures(parts: Uint8Array[]): string {
  const bytes = new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))))
  return openpgp.armor(openpgp.enums.armor.signature, bytes, undefined, undefined, undefined, true)
}
