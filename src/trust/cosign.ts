// Checking cosign key signatures offline: the simple-signing payloads of cosign 1.x/2.x and the
// DSSE envelopes (in-toto Statement v1) inside the sigstore bundles of cosign 3.x. Only public
// keys: no Fulcio certificate and no Rekor entry is looked at.
import {createHash, createPublicKey, verify, constants, type KeyObject} from 'node:crypto'
import {FerryError} from '../errors.js'

export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature'
export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json'
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature'
export const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json'
export const IN_TOTO_PAYLOAD = 'application/vnd.in-toto+json'
export const IN_TOTO_STATEMENT = 'https://in-toto.io/Statement/v1'
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1'

/** A PKIX public key a manifest names for cosign signatures. */
export interface CosignKey {
  /** the file as the manifest names it, for messages */
  file: string
  /** `sha256:<hex>` of the key's DER SubjectPublicKeyInfo (sigstore's key id) */
  fingerprint: string
  /** the PEM text */
  pem: string
  key: KeyObject
}

/** Reads a PEM public key (ECDSA P-256/P-384/P-521, Ed25519 or RSA); anything else is exit 4 naming the file. */
export function parseCosignKey(pem: string, file: string): CosignKey {
  let key: KeyObject
  try {
    key = createPublicKey({key: pem, format: 'pem'})
  } catch (err) {
    throw new FerryError('trust', 'BAD_COSIGN_KEY', `${file}: not a PEM public key (${(err as Error).message})`)
  }
  const type = key.asymmetricKeyType
  if (type !== 'ec' && type !== 'ed25519' && type !== 'rsa') {
    throw new FerryError('trust', 'BAD_COSIGN_KEY', `${file}: a ${type} key; cosign keys are ECDSA, Ed25519 or RSA`)
  }
  const der = key.export({type: 'spki', format: 'der'})
  return {file, fingerprint: `sha256:${createHash('sha256').update(der).digest('hex')}`, pem: key.export({type: 'spki', format: 'pem'}).toString(), key}
}

const EC_HASH: Record<string, string> = {prime256v1: 'sha256', secp384r1: 'sha384', secp521r1: 'sha512'}

/** Whether `signature` is `key`'s over `data`: ECDSA (DER, the curve's hash), Ed25519, or RSA (PKCS#1 v1.5 or PSS, SHA-256). */
export function verifyWithKey(key: CosignKey, data: Buffer, signature: Buffer): boolean {
  const k = key.key
  try {
    if (k.asymmetricKeyType === 'ed25519') return verify(null, data, k, signature)
    if (k.asymmetricKeyType === 'ec') return verify(EC_HASH[k.asymmetricKeyDetails?.namedCurve ?? ''] ?? 'sha256', data, {key: k, dsaEncoding: 'der'}, signature)
    return verify('sha256', data, k, signature) || verify('sha256', data, {key: k, padding: constants.RSA_PKCS1_PSS_PADDING}, signature)
  } catch {
    return false
  }
}

/** DSSE's pre-authentication encoding: what a DSSE signature is over. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8')
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload])
}

/** Why one signature failed, ranked: a valid signature over the wrong claim says more than a bad one. */
export interface Refusal {
  rank: number
  reason: string
}

export type Checked = {ok: true} | {ok: false; refusal: Refusal}

const refuse = (rank: number, reason: string): Checked => ({ok: false, refusal: {rank, reason}})

function decodeBase64(text: unknown): Buffer | undefined {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text.replace(/\s/g, ''))) return undefined
  return Buffer.from(text, 'base64')
}

/**
 * A cosign 1.x/2.x signature: `payload` (the simple-signing JSON, exact bytes) with `signature`
 * (the layer annotation, base64 DER). The payload must name `digest` and the cosign type.
 */
export function checkSimpleSigning(key: CosignKey, digest: string, payload: Buffer, signatureText: string | undefined): Checked {
  const signature = decodeBase64(signatureText)
  if (!signature || signature.length === 0) return refuse(1, `the signature layer has no base64 ${SIGNATURE_ANNOTATION} annotation`)
  if (!verifyWithKey(key, payload, signature)) return refuse(2, 'the signature does not verify with this key (another key, or a damaged or truncated signature)')
  let claim: {critical?: {image?: {'docker-manifest-digest'?: unknown}; type?: unknown}}
  try {
    claim = JSON.parse(payload.toString('utf8'))
  } catch {
    return refuse(3, 'the signed payload is not JSON')
  }
  const named = claim.critical?.image?.['docker-manifest-digest']
  if (named !== digest) return refuse(4, `the signed payload is for ${String(named)}, not this image`)
  if (claim.critical?.type !== COSIGN_SIGNATURE_TYPE) return refuse(4, `the signed payload's critical.type is ${JSON.stringify(claim.critical?.type)}, not "${COSIGN_SIGNATURE_TYPE}"`)
  return {ok: true}
}

interface SigstoreBundle {
  mediaType?: unknown
  dsseEnvelope?: {payload?: unknown; payloadType?: unknown; signatures?: Array<{sig?: unknown}>}
}

/**
 * A cosign 3.x signature: a sigstore bundle (v0.3) holding a DSSE envelope over an in-toto
 * Statement v1 with the cosign sign predicate, whose subject's sha256 must be the image's digest.
 */
export function checkSigstoreBundle(key: CosignKey, digest: string, bundleBytes: Buffer): Checked {
  let bundle: SigstoreBundle
  try {
    bundle = JSON.parse(bundleBytes.toString('utf8'))
  } catch {
    return refuse(1, 'the sigstore bundle is not JSON')
  }
  const env = bundle.dsseEnvelope
  if (!env) return refuse(1, 'the sigstore bundle holds no DSSE envelope (a message signature is not an image signature)')
  const payload = decodeBase64(env.payload)
  if (!payload || typeof env.payloadType !== 'string') return refuse(1, 'the DSSE envelope has no payload')
  const signatures = (Array.isArray(env.signatures) ? env.signatures : []).map((s) => decodeBase64(s?.sig)).filter((s): s is Buffer => !!s && s.length > 0)
  if (signatures.length === 0) return refuse(1, 'the DSSE envelope carries no signature')
  const signed = pae(env.payloadType, payload)
  if (!signatures.some((s) => verifyWithKey(key, signed, s))) return refuse(2, 'the DSSE signature does not verify with this key (another key, or a damaged or truncated signature)')
  if (env.payloadType !== IN_TOTO_PAYLOAD) return refuse(3, `the DSSE payload type is ${env.payloadType}, not ${IN_TOTO_PAYLOAD}`)
  let statement: {_type?: unknown; predicateType?: unknown; subject?: Array<{digest?: {sha256?: unknown}}>}
  try {
    statement = JSON.parse(payload.toString('utf8'))
  } catch {
    return refuse(3, 'the signed statement is not JSON')
  }
  if (statement._type !== IN_TOTO_STATEMENT) return refuse(3, `the signed statement is ${String(statement._type)}, not an in-toto Statement v1`)
  if (statement.predicateType !== COSIGN_SIGN_PREDICATE) return refuse(3, `the signed statement's predicate is ${String(statement.predicateType)}, not ${COSIGN_SIGN_PREDICATE}`)
  const hex = digest.slice('sha256:'.length)
  const subjects = Array.isArray(statement.subject) ? statement.subject.map((s) => s?.digest?.sha256) : []
  if (!subjects.includes(hex)) return refuse(4, `the signed statement's subject is ${subjects.map((s) => `sha256:${String(s)}`).join(', ') || 'empty'}, not this image`)
  return {ok: true}
}
