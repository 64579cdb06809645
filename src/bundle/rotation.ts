import * as openpgp from 'openpgp'
import type {PublicKey} from 'openpgp'
import {readPublicKeys} from '../trust/keys.js'
import {hexId} from '../trust/pgp-data.js'
import {trustError, usageError} from '../errors.js'
import type {KeyRotation} from './format.js'

/**
 * A key rotation travels inside bundle.json, so the keys the device trusts today sign the set it will
 * trust tomorrow. Built from public key files on the build side (`bundle build --rotate-to`).
 */
export async function rotationFromFiles(files: string[], threshold = 1, revoke: string[] = []): Promise<KeyRotation> {
  if (files.length === 0) throw usageError('ROTATION_EMPTY', 'a key rotation needs at least one new public key (--rotate-to NEW.pub.asc)')
  const keys = await readPublicKeys(files, '--rotate-to')
  const unique = new Map<string, PublicKey>()
  for (const key of keys) unique.set(hexId(key.getFingerprint()), key)
  if (threshold > unique.size) {
    throw usageError('ROTATION_THRESHOLD', `--rotate-threshold ${threshold} is more than the ${unique.size} distinct key(s) given with --rotate-to`)
  }
  const revoked = revoke.map((fpr) => fpr.replace(/\s+/g, '').toUpperCase())
  for (const fpr of revoked) {
    if (unique.has(fpr)) throw usageError('ROTATION_REVOKES_NEW_KEY', `key ${fpr} is both in the new key set and revoked`)
  }
  return {
    keys: [...unique.values()].map((k) => k.armor()),
    threshold,
    ...(revoked.length ? {revoke: revoked} : {}),
  }
}

/** The public keys of a rotation, each checked to be one public key; a bad one is a trust error (exit 4). */
export async function rotationKeys(rotation: KeyRotation): Promise<Array<{fingerprint: string; key: PublicKey}>> {
  const out: Array<{fingerprint: string; key: PublicKey}> = []
  for (const [i, armored] of rotation.keys.entries()) {
    let key: PublicKey
    try {
      key = await openpgp.readKey({armoredKey: armored})
    } catch (err) {
      throw trustError('ROTATION_BAD_KEY', `the key rotation's key #${i + 1} is not a readable OpenPGP public key (${(err as Error).message})`)
    }
    if (key.isPrivate()) throw trustError('ROTATION_BAD_KEY', `the key rotation's key #${i + 1} is a private key; only public keys may travel in a bundle`)
    const fingerprint = hexId(key.getFingerprint())
    if (!out.some((k) => k.fingerprint === fingerprint)) out.push({fingerprint, key})
  }
  if (rotation.threshold > out.length) {
    throw trustError('ROTATION_THRESHOLD', `the key rotation requires ${rotation.threshold} signature(s) but carries only ${out.length} distinct key(s)`)
  }
  return out
}
