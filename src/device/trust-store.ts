import {readdir, readFile} from 'node:fs/promises'
import * as openpgp from 'openpgp'
import type {PublicKey} from 'openpgp'
import type {KeyRotation} from '../bundle/format.js'
import {rotationKeys} from '../bundle/rotation.js'
import {describeKey, readKeyFile} from '../trust/keys.js'
import {hexId} from '../trust/pgp-data.js'
import {signatureKeyIds, verifyDetached} from '../trust/verify.js'
import {FerryError, trustError, usageError} from '../errors.js'
import {unlinkDurable, writeFileAtomic} from '../store/atomic-file.js'
import {withDeviceLock} from './lock.js'
import type {DevicePaths} from './paths.js'
import {readTrustFile, trustFile, TrustPolicy, writeTrustFile} from './trust-format.js'

export {committedName, isBad, listFloors, markBad, raiseFloor, readFloor} from './release-guards.js'
export {deviceNow, recordTime, seenTime} from './clock.js'

export interface TrustedKey {
  fingerprint: string
  key: PublicKey
}

export interface LoadedTrust {
  threshold: number
  keys: TrustedKey[]
  revoked: Set<string>
}

export interface TrustedKeyInfo {
  fingerprint: string
  userIds: string[]
  created: string
  algorithm: string
  expires?: string
}

/** A new object each time: callers push onto its lists, which must never be shared between devices. */
const emptyPolicy = (): TrustPolicy => ({schema: 'ferry.trust-policy/v1', threshold: 1, keys: [], revoked: []})

async function readPolicy(paths: DevicePaths): Promise<TrustPolicy> {
  return (await readTrustFile(trustFile.policy(paths), TrustPolicy)) ?? emptyPolicy()
}

async function writePolicy(paths: DevicePaths, policy: TrustPolicy): Promise<void> {
  await writeTrustFile(trustFile.policy(paths), policy)
}

/** Every trusted key with its parsed public key; a key listed in the policy but missing on disk is an error. */
export async function loadTrust(paths: DevicePaths): Promise<LoadedTrust> {
  const policy = await readPolicy(paths)
  const keys: TrustedKey[] = []
  for (const fingerprint of policy.keys) {
    const file = trustFile.key(paths, fingerprint)
    let armored: string
    try {
      armored = await readFile(file, 'utf8')
    } catch {
      throw new FerryError('integrity', 'TRUST_STORE_CORRUPT', `${file} is missing but policy.json trusts it; add the key again with "ferry device trust add"`)
    }
    const key = await openpgp.readKey({armoredKey: armored})
    if (hexId(key.getFingerprint()) !== fingerprint) {
      throw new FerryError('integrity', 'TRUST_STORE_CORRUPT', `${file} holds key ${hexId(key.getFingerprint())}, not ${fingerprint}`)
    }
    keys.push({fingerprint, key})
  }
  return {threshold: policy.threshold, keys, revoked: new Set(policy.revoked)}
}

async function info(key: PublicKey): Promise<TrustedKeyInfo> {
  const d = await describeKey(key)
  return {fingerprint: d.fingerprint, userIds: d.userIds, created: d.created, algorithm: d.algorithm, ...(d.expires ? {expires: d.expires} : {})}
}

/** Trusts every public key in `file` (armored or binary). Refuses private keys, revoked and expired keys. */
export async function addTrustedKey(paths: DevicePaths, file: string): Promise<TrustedKeyInfo[]> {
  const keys = await readKeyFile(file)
  if (keys.length === 0) throw usageError('KEY_UNREADABLE', `${file} holds no OpenPGP key`)
  for (const key of keys) {
    if (key.isPrivate()) throw usageError('KEY_IS_PRIVATE', `${file} holds a private key; a device trusts public keys only: give the .pub.asc file`)
  }
  return withDeviceLock(paths, async () => {
    const policy = await readPolicy(paths)
    const added: TrustedKeyInfo[] = []
    for (const key of keys as PublicKey[]) {
      const fingerprint = hexId(key.getFingerprint())
      if (policy.revoked.includes(fingerprint)) {
        throw trustError('KEY_REVOKED', `key ${fingerprint} was revoked on this device and cannot be trusted again`)
      }
      if (await key.isRevoked()) throw trustError('KEY_REVOKED', `key ${fingerprint} in ${file} carries its own revocation; ask for the current release key`)
      const expires = await key.getExpirationTime().catch(() => null)
      if (expires instanceof Date && expires <= new Date()) throw trustError('KEY_EXPIRED', `key ${fingerprint} in ${file} expired on ${expires.toISOString()}`)
      await writeFileAtomic(trustFile.key(paths, fingerprint), key.armor())
      if (!policy.keys.includes(fingerprint)) policy.keys.push(fingerprint)
      added.push(await info(key))
    }
    await writePolicy(paths, policy)
    return added
  })
}

export interface TrustListing {
  threshold: number
  keys: TrustedKeyInfo[]
  revoked: string[]
}

export async function listTrustedKeys(paths: DevicePaths): Promise<TrustListing> {
  const trust = await loadTrust(paths)
  const keys: TrustedKeyInfo[] = []
  for (const k of trust.keys) keys.push(await info(k.key))
  return {threshold: trust.threshold, keys, revoked: [...trust.revoked]}
}

/** A full fingerprint, or a 16-digit key id / unique suffix of at least 16 hex digits, to one trusted fingerprint. */
function resolveFingerprint(policy: TrustPolicy, given: string): string | undefined {
  const wanted = given.replace(/\s+/g, '').toUpperCase()
  if (!/^[0-9A-F]{16,64}$/.test(wanted)) throw usageError('BAD_FINGERPRINT', `"${given}" is not a key fingerprint; see them with "ferry device trust list"`)
  const matches = policy.keys.filter((f) => f === wanted || f.endsWith(wanted))
  if (matches.length > 1) throw usageError('AMBIGUOUS_FINGERPRINT', `"${given}" matches ${matches.length} keys; give the full fingerprint`)
  return matches[0]
}

/**
 * Stops trusting a key. `revoke` also records it as revoked, so neither `trust add` nor a bundle's key rotation
 * can bring it back (a revoked fingerprint not in the store is recorded too, ahead of time). Removing the last
 * key, or leaving fewer keys than the threshold, would make every bundle fail: refused unless `force`.
 */
export async function removeTrustedKey(
  paths: DevicePaths,
  fingerprint: string,
  opts: {revoke?: boolean; force?: boolean} = {},
): Promise<{removed?: string; revoked?: string; threshold: number; remaining: number}> {
  return withDeviceLock(paths, async () => {
    const policy = await readPolicy(paths)
    const found = resolveFingerprint(policy, fingerprint)
    const full = fingerprint.replace(/\s+/g, '').toUpperCase()
    if (!found && !(opts.revoke && /^[0-9A-F]{40,64}$/.test(full))) {
      throw usageError('KEY_NOT_TRUSTED', `no trusted key matches ${fingerprint}; see them with "ferry device trust list"`)
    }
    const remaining = policy.keys.filter((f) => f !== found)
    if (found && !opts.force && remaining.length < policy.threshold) {
      const why = remaining.length === 0 ? 'it is the last trusted key' : `only ${remaining.length} key(s) would remain for a threshold of ${policy.threshold}`
      throw usageError('LAST_KEY', `not removing ${found}: ${why}, so no bundle could be imported; add the new key first, or use --force`)
    }
    const revokedNow = opts.revoke ? (found ?? full) : undefined
    const next: TrustPolicy = {
      ...policy,
      keys: remaining,
      revoked: revokedNow && !policy.revoked.includes(revokedNow) ? [...policy.revoked, revokedNow] : policy.revoked,
    }
    await writePolicy(paths, next)
    if (found) await unlinkDurable(trustFile.key(paths, found))
    return {...(found ? {removed: found} : {}), ...(revokedNow ? {revoked: revokedNow} : {}), threshold: next.threshold, remaining: remaining.length}
  })
}

/**
 * Checks bundle.json's signature(s) against the trust store: `threshold` distinct trusted, non-revoked keys
 * must each have a valid signature, judged at `now` (the device's time). Else a trust error (exit 4) naming
 * what was found. Returns the keys that signed.
 */
export async function checkBundleSignatures(
  paths: DevicePaths,
  bundleJson: Buffer,
  signature: Buffer,
  opts: {now?: Date; trust?: LoadedTrust} = {},
): Promise<Array<{fingerprint: string}>> {
  const trust = opts.trust ?? (await loadTrust(paths))
  if (trust.keys.length === 0) {
    throw trustError('NO_TRUSTED_KEYS', `this device trusts no key yet: run "ferry device trust add release.pub.asc --root ${paths.root}" first`)
  }
  const usable = trust.keys.filter((k) => !trust.revoked.has(k.fingerprint)).map((k) => k.key)
  let signers: Array<{fingerprint: string}>
  try {
    signers = (await verifyDetached(bundleJson, signature, usable, {what: 'bundle.json.asc', date: opts.now})).signers
  } catch (err) {
    const issuers = await signatureKeyIds(signature, 'bundle.json.asc').catch(() => [] as string[])
    const revoked = issuers.find((id) => [...trust.revoked].some((f) => f === id || f.endsWith(id)))
    if (revoked) throw trustError('KEY_REVOKED', `bundle.json is signed by ${revoked}, a key revoked on this device; ask for a bundle signed by a current key`)
    throw err
  }
  if (signers.length < trust.threshold) {
    throw trustError(
      'SIGNATURE_THRESHOLD',
      `bundle.json carries ${signers.length} valid signature(s) from trusted keys (${signers.map((s) => s.fingerprint).join(', ')}); this device requires ${trust.threshold}`,
    )
  }
  return signers.map((s) => ({fingerprint: s.fingerprint}))
}

/** Refuses a rotation the device could not adopt: unreadable keys, a threshold above the key count, revoked keys. */
export async function checkRotation(paths: DevicePaths, rotation: KeyRotation): Promise<string[]> {
  const keys = await rotationKeys(rotation)
  const policy = await readPolicy(paths)
  const revoked = new Set([...policy.revoked, ...(rotation.revoke ?? [])])
  const bad = keys.find((k) => revoked.has(k.fingerprint))
  if (bad) throw trustError('ROTATION_REVOKED_KEY', `the bundle's key rotation would trust ${bad.fingerprint}, which is revoked`)
  return keys.map((k) => k.fingerprint)
}

/**
 * Adopts a key rotation carried by a committed bundle (call at commit, under the device lock): the rotation's
 * keys become the trusted set with its threshold; `revoke` is added to the revoked list; keys not in the new set
 * are no longer trusted. The new key files are written first and policy.json switches the set with one atomic
 * rename, so a power cut leaves the old set or the new one. Safe to call again (recover may repeat a commit).
 */
export async function adoptRotation(paths: DevicePaths, rotation: KeyRotation): Promise<{keys: string[]; threshold: number}> {
  const fingerprints = await checkRotation(paths, rotation)
  const keys = await rotationKeys(rotation)
  for (const k of keys) await writeFileAtomic(trustFile.key(paths, k.fingerprint), k.key.armor())
  const policy = await readPolicy(paths)
  const revoked = [...policy.revoked]
  for (const f of rotation.revoke ?? []) if (!revoked.includes(f)) revoked.push(f)
  await writePolicy(paths, {schema: 'ferry.trust-policy/v1', threshold: rotation.threshold, keys: fingerprints, revoked})
  const files = await readdir(trustFile.keys(paths)).catch(() => [] as string[])
  for (const name of files) {
    const fpr = name.replace(/\.asc$/, '')
    if (name.endsWith('.asc') && !fingerprints.includes(fpr)) await unlinkDurable(trustFile.key(paths, fpr))
  }
  return {keys: fingerprints, threshold: rotation.threshold}
}
