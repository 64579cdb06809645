import {constants as fsc} from 'node:fs'
import {open, readdir, readFile, stat, unlink} from 'node:fs/promises'
import {join} from 'node:path'
import * as openpgp from 'openpgp'
import type {Key, PublicKey} from 'openpgp'
import {refuseFileAsFolder} from '../store/folder.js'
import {FerryError} from '../errors.js'
import {mkdirDurable, syncDir} from '../store/atomic-file.js'
import {armorKinds, armoredBlocks, hexId, isArmored, reason} from './pgp-data.js'

export type {PublicKey} from 'openpgp'

export interface KeyPair {
  publicArmored: string
  privateArmored: string
  /** 40 uppercase hex digits. */
  fingerprint: string
}

export interface KeyDescription {
  /** 40 uppercase hex digits. */
  fingerprint: string
  userIds: string[]
  /** ISO 8601. */
  created: string
  /** e.g. "EdDSA Ed25519", "RSA 3072". */
  algorithm: string
  revoked: boolean
  /** ISO 8601; absent when the key never expires. */
  expires?: string
}

export interface ListedKey extends KeyDescription {
  /** Path of the file the key was read from. */
  file: string
  private: boolean
}

/** A key file is a few KiB; anything far larger is some other file given by mistake. */
const MAX_KEY_FILE = 4 * 1024 * 1024
const KEY_FILE = /\.(asc|gpg|pgp|key)$/i
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/**
 * A new v4 key whose primary key signs with legacy EdDSA over Ed25519: the form gpg 2.2 reads, and one whose
 * signatures are deterministic. No encryption subkey: Ferry keys only sign.
 */
export async function generateKeyPair(opts: {name: string; email?: string; passphrase?: string; date?: Date}): Promise<KeyPair> {
  if (!opts.name.trim()) throw new FerryError('usage', 'KEY_NAME_EMPTY', 'a key needs a name (its user id), e.g. --name "Release signing"')
  let generated
  try {
    generated = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{name: opts.name, ...(opts.email ? {email: opts.email} : {})}],
      subkeys: [],
      format: 'object',
      ...(opts.passphrase ? {passphrase: opts.passphrase} : {}),
      ...(opts.date ? {date: opts.date} : {}),
    })
  } catch (err) {
    if (/user ?id/i.test(reason(err))) {
      throw new FerryError('usage', 'KEY_USER_ID_INVALID', `"${opts.name}${opts.email ? ` <${opts.email}>` : ''}" is not a valid user id; check the name and e-mail address`)
    }
    throw err
  }
  const {privateKey, publicKey} = generated
  return {publicArmored: publicKey.armor(), privateArmored: privateKey.armor(), fingerprint: hexId(publicKey.getFingerprint())}
}

/**
 * Writes DIR/NAME.pub.asc and DIR/NAME.key.asc. The private file is created with mode 0600 in the same call
 * that creates it, so it is never readable by others, not even for a moment. Existing files are never replaced.
 */
export async function writeKeyPair(dir: string, name: string, pair: KeyPair): Promise<{public: string; private: string}> {
  if (!SAFE_NAME.test(name)) {
    throw new FerryError('usage', 'KEY_FILE_NAME', `"${name}" cannot be used as a file name: use letters, digits, ".", "_" and "-"`)
  }
  await refuseFileAsFolder(dir, '--out')
  const publicPath = join(dir, `${name}.pub.asc`)
  const privatePath = join(dir, `${name}.key.asc`)
  for (const p of [publicPath, privatePath]) {
    if (await exists(p)) {
      throw new FerryError('usage', 'KEY_FILE_EXISTS', `${p} already exists; Ferry never overwrites a key file. Choose another --name or --out.`)
    }
  }
  await mkdirDurable(dir)
  await writeNew(privatePath, pair.privateArmored, 0o600)
  try {
    await writeNew(publicPath, pair.publicArmored, 0o644)
  } catch (err) {
    await unlink(privatePath).catch(() => undefined)
    throw err
  }
  await syncDir(dir)
  return {public: publicPath, private: privatePath}
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

async function writeNew(path: string, text: string, mode: number): Promise<void> {
  let handle
  try {
    handle = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FerryError('usage', 'KEY_FILE_EXISTS', `${path} already exists; Ferry never overwrites a key file.`)
    }
    throw err
  }
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Every key held by one file: armored (one or several blocks) or binary, public or private. */
export async function readKeyFile(path: string): Promise<Key[]> {
  return parseKeys(await loadKeyFile(path), path)
}

async function loadKeyFile(path: string): Promise<Buffer> {
  let info
  try {
    info = await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FerryError('usage', 'KEY_NOT_FOUND', `key file ${path} does not exist`)
    throw err
  }
  if (!info.isFile()) throw new FerryError('usage', 'KEY_UNREADABLE', `${path} is not a file; give the path of an OpenPGP key file`)
  if (info.size > MAX_KEY_FILE) {
    throw new FerryError('usage', 'KEY_UNREADABLE', `${path} is ${info.size} bytes, too large for an OpenPGP key file; is it the right file?`)
  }
  return readFile(path)
}

async function parseKeys(bytes: Buffer, path: string): Promise<Key[]> {
  try {
    if (!isArmored(bytes)) return await openpgp.readKeys({binaryKeys: new Uint8Array(bytes)})
    const text = bytes.toString('utf8')
    const blocks = [...armoredBlocks(text, 'PUBLIC KEY BLOCK'), ...armoredBlocks(text, 'PRIVATE KEY BLOCK')]
    if (blocks.length === 0) {
      const kinds = armorKinds(text)
      throw new Error(kinds.length ? `it holds a PGP ${kinds[0].toLowerCase()}, not a key` : 'no complete key block')
    }
    const keys: Key[] = []
    for (const block of blocks) keys.push(...(await openpgp.readKeys({armoredKeys: block})))
    return keys
  } catch (err) {
    throw new FerryError('usage', 'KEY_UNREADABLE', `cannot read an OpenPGP key from ${path}: ${reason(err)}`, {cause: err})
  }
}

/**
 * The public keys in the given files. A private key is refused (KEY_IS_PRIVATE, exit 2): where a
 * public key is expected, a secret one is a file copied to the wrong place. `what` names the flag or
 * field the files came from.
 */
export async function readPublicKeys(paths: string[], what = '--key'): Promise<PublicKey[]> {
  const keys: PublicKey[] = []
  for (const path of paths) {
    for (const key of await readKeyFile(path)) {
      if (key.isPrivate()) {
        throw new FerryError('usage', 'KEY_IS_PRIVATE', `${what} ${path} holds a private key; give its public key instead (the NAME.pub.asc beside it, or "gpg --armor --export FINGERPRINT"), and keep the private key off this path`)
      }
      keys.push(key)
    }
  }
  return keys
}

/** What a person needs to recognise a key. `date` is the moment revocation and expiry are judged at. */
export async function describeKey(key: Key, date = new Date()): Promise<KeyDescription> {
  const expiry = await key.getExpirationTime().catch(() => null)
  return {
    fingerprint: hexId(key.getFingerprint()),
    userIds: key.getUserIDs(),
    created: key.getCreationTime().toISOString(),
    algorithm: algorithmName(key),
    revoked: await key.isRevoked(undefined, undefined, date),
    ...(expiry instanceof Date ? {expires: expiry.toISOString()} : {}),
  }
}

export function algorithmName(key: Pick<Key, 'getAlgorithmInfo'>): string {
  const {algorithm, bits, curve} = key.getAlgorithmInfo()
  switch (algorithm) {
    case 'eddsaLegacy':
      return 'EdDSA Ed25519'
    case 'ed25519':
      return 'Ed25519'
    case 'ed448':
      return 'Ed448'
    case 'ecdsa':
      return `ECDSA ${curve ?? ''}`.trim()
    case 'rsaEncryptSign':
    case 'rsaSign':
      return `RSA ${bits ?? ''}`.trim()
    default:
      return [algorithm, curve ?? bits].filter(Boolean).join(' ')
  }
}

/**
 * The keys found in the key files (.asc, .gpg, .pgp, .key) of a folder, sorted by file. Armored files that hold
 * no key (a detached signature kept beside the keys, say) are left out; a key file that cannot be read is an error.
 */
export async function listKeys(dir: string): Promise<ListedKey[]> {
  let names: string[]
  try {
    names = (await readdir(dir, {withFileTypes: true})).filter((e) => e.isFile() && KEY_FILE.test(e.name)).map((e) => e.name)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FerryError('usage', 'KEYS_DIR_NOT_FOUND', `${dir} is not a folder`)
    throw err
  }
  const listed: ListedKey[] = []
  for (const name of names.sort()) {
    const file = join(dir, name)
    const bytes = await loadKeyFile(file)
    if (isArmored(bytes) && !armorKinds(bytes.toString('utf8')).some((k) => k.endsWith('KEY BLOCK'))) continue
    for (const key of await parseKeys(bytes, file)) {
      listed.push({file, ...(await describeKey(key)), private: key.isPrivate()})
    }
  }
  return listed
}
