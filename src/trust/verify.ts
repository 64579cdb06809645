import * as openpgp from 'openpgp'
import type {PublicKey, SignaturePacket} from 'openpgp'
import {FerryError} from '../errors.js'
import {hexId, isArmored, reason} from './pgp-data.js'

export interface VerifiedSigner {
  /** Fingerprint of the trusted primary key, even when a signing subkey made the signature. */
  fingerprint: string
  /** When the signature says it was made (ISO 8601). */
  created: string
}

export interface RejectedSignature {
  /** Fingerprint of the trusted primary key the signature claims to come from. */
  fingerprint: string
  code: string
  reason: string
}

export interface DetachedVerification {
  signers: VerifiedSigner[]
  /** Issuers not among the trusted keys: the issuer fingerprint when the signature names it, else the 16-digit key id. */
  unknownKeyIds: string[]
  /** Signatures by trusted keys that did not verify (the call still succeeds when another one did). */
  rejected: RejectedSignature[]
}

/**
 * Checks a detached signature (armored or binary, one or several signature packets) over `data`. At least one
 * packet must verify against a trusted key whose key is neither revoked nor expired at `date` (default: now);
 * otherwise a FerryError (exit 4) says why, naming `what`. Every signer that verified is returned.
 */
export async function verifyDetached(
  data: Uint8Array,
  signature: string | Uint8Array,
  trusted: PublicKey[],
  opts: {what?: string; date?: Date} = {},
): Promise<DetachedVerification> {
  const what = opts.what ?? 'signature'
  const date = opts.date ?? new Date()
  const packets = dataSignatures(await parseSignature(signature, what))
  if (packets.length === 0) {
    throw new FerryError('trust', 'SIGNATURE_MISSING', `${what} holds no signature over data; it must be a detached OpenPGP signature`)
  }
  const result: DetachedVerification = {signers: [], unknownKeyIds: [], rejected: []}
  for (const packet of packets) {
    const candidates = issuers(packet, trusted)
    if (candidates.length === 0) {
      result.unknownKeyIds.push(issuerName(packet))
      continue
    }
    let firstProblem: RejectedSignature | undefined
    for (const key of candidates) {
      const fingerprint = hexId(key.getFingerprint())
      const problem = await checkOne(data, packet, key, date)
      if (!problem) {
        if (!result.signers.some((s) => s.fingerprint === fingerprint)) {
          result.signers.push({fingerprint, created: (packet.created ?? date).toISOString()})
        }
        firstProblem = undefined
        break
      }
      firstProblem ??= {fingerprint, ...problem}
    }
    if (firstProblem) result.rejected.push(firstProblem)
  }
  if (result.signers.length > 0) return result
  const first = result.rejected[0]
  if (first) throw new FerryError('trust', first.code, `${what}: ${first.reason}`)
  throw new FerryError(
    'trust',
    'SIGNATURE_UNKNOWN_KEY',
    `${what} is signed only by key(s) that are not trusted here: ${result.unknownKeyIds.join(', ')}; ` +
      'add the signer\'s public key to the trusted keys if you trust it, or check who signed this',
  )
}

/** The issuers named in a signature's packets, without verifying anything (for showing who signed a bundle). */
export async function signatureKeyIds(signature: string | Uint8Array, what = 'signature'): Promise<string[]> {
  return dataSignatures(await parseSignature(signature, what)).map(issuerName)
}

async function parseSignature(signature: string | Uint8Array, what: string): Promise<openpgp.Signature> {
  if (signature.length === 0) throw new FerryError('trust', 'SIGNATURE_MISSING', `${what} is empty; it must hold an OpenPGP signature`)
  try {
    if (typeof signature === 'string' || isArmored(signature)) {
      const text = typeof signature === 'string' ? signature : Buffer.from(signature).toString('utf8')
      return await openpgp.readSignature({armoredSignature: text})
    }
    return await openpgp.readSignature({binarySignature: signature})
  } catch (err) {
    throw new FerryError('trust', 'SIGNATURE_MALFORMED', `${what} is not a readable OpenPGP signature (${reason(err)})`, {cause: err})
  }
}

/** Signature packets over binary or text data; key certifications and other kinds sign no data. */
function dataSignatures(signature: openpgp.Signature): SignaturePacket[] {
  const kinds = [openpgp.enums.signature.binary, openpgp.enums.signature.text]
  return [...signature.packets].filter((p) => p.signatureType !== null && kinds.includes(p.signatureType))
}

/**
 * Trusted keys that hold the key the signature names. A 64-bit key id can be forged to collide, so when the
 * signature also names the issuer's full fingerprint, only keys with that fingerprint qualify.
 */
function issuers(packet: SignaturePacket, trusted: PublicKey[]): PublicKey[] {
  const byId = trusted.filter((k) => k.getKeys(packet.issuerKeyID).length > 0)
  if (!packet.issuerFingerprint) return byId
  const wanted = hexId(packet.issuerFingerprint)
  return byId.filter((k) => k.getKeys(packet.issuerKeyID).some((sub) => hexId(sub.getFingerprint()) === wanted))
}

function issuerName(packet: SignaturePacket): string {
  return packet.issuerFingerprint ? hexId(packet.issuerFingerprint) : hexId(packet.issuerKeyID.toHex())
}

async function checkOne(
  data: Uint8Array,
  packet: SignaturePacket,
  key: PublicKey,
  date: Date,
): Promise<{code: string; reason: string} | undefined> {
  const fingerprint = hexId(key.getFingerprint())
  const signingKey = key.getKeys(packet.issuerKeyID)[0]
  const which = signingKey === key ? `key ${fingerprint}` : `subkey ${hexId(signingKey.getFingerprint())} of key ${fingerprint}`
  // Revocation and expiry are judged at `date` too: a key revoked after it signed is not trusted any more.
  if (await key.isRevoked(undefined, undefined, date)) return {code: 'SIGNATURE_KEY_REVOKED', reason: `signed by ${which}, which has been revoked`}
  const expires = await key.getExpirationTime().catch(() => null)
  if (expires instanceof Date && expires <= date) {
    return {code: 'SIGNATURE_KEY_EXPIRED', reason: `signed by ${which}, which expired on ${expires.toISOString()}`}
  }
  try {
    const single = new openpgp.Signature(new openpgp.PacketList<SignaturePacket>(packet))
    const message = await openpgp.createMessage({binary: data})
    const {signatures} = await openpgp.verify({message, signature: single, verificationKeys: [key], date, format: 'binary', expectSigned: false})
    await signatures[0].verified
    return undefined
  } catch (err) {
    return explain(err, which, packet, date)
  }
}

function explain(err: unknown, which: string, packet: SignaturePacket, date: Date): {code: string; reason: string} {
  const text = reason(err)
  if (/digest did not match|verification failed|invalid signature/i.test(text)) {
    return {
      code: 'SIGNATURE_BAD',
      reason: `the signature by ${which} does not match the data: the file changed after it was signed, or the signature is damaged or belongs to other data`,
    }
  }
  if (/creation time is in the future/i.test(text)) {
    return {
      code: 'SIGNATURE_FROM_FUTURE',
      reason: `the signature by ${which} is dated ${packet.created?.toISOString()}, later than ${date.toISOString()}; is this machine's clock behind?`,
    }
  }
  if (/revoked/i.test(text)) return {code: 'SIGNATURE_KEY_REVOKED', reason: `signed by ${which}, which has been revoked`}
  if (/expired/i.test(text)) return {code: 'SIGNATURE_KEY_EXPIRED', reason: `signed by ${which}, which had expired when it signed`}
  return {code: 'SIGNATURE_INVALID', reason: `the signature by ${which} is not valid: ${text}`}
}
