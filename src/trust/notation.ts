// Checking Notary Project (notation) signatures offline: a JWS envelope (JSON serialization)
// whose protected header and payload follow the notation signature specification, signed by
// the leaf of an X.509 chain (x5c) that must lead to a root the manifest names; or a COSE_Sign1
// envelope carrying the same (notation-cose.ts).
import {createHash, verify, constants, X509Certificate} from 'node:crypto'
import {FerryError} from '../errors.js'
import {parseCoseEnvelope, type ParsedEnvelope} from './notation-cose.js'
import {keyUsage} from './x509-der.js'

export const NOTATION_SIGNATURE = 'application/vnd.cncf.notary.signature'
export const JWS_ENVELOPE = 'application/jose+json'
export const COSE_ENVELOPE = 'application/cose'
export const NOTATION_PAYLOAD = 'application/vnd.cncf.notary.payload.v1+json'
const SIGNING_SCHEME = 'io.cncf.notary.signingScheme'
const SIGNING_TIME = 'io.cncf.notary.signingTime'
const AUTHENTIC_TIME = 'io.cncf.notary.authenticSigningTime'
const EXPIRY = 'io.cncf.notary.expiry'
const CODE_SIGNING = '1.3.6.1.5.5.7.3.3'
/** protected header fields notation defines; a `crit` entry outside these is not understood */
const KNOWN_CRITICAL = new Set([SIGNING_SCHEME, EXPIRY, AUTHENTIC_TIME])

/** A root certificate a manifest names for notation signatures. */
export interface NotationRoot {
  /** the file as the manifest names it */
  file: string
  certs: X509Certificate[]
}

/** Who signed: the leaf certificate's subject and the sha256 of its DER. */
export interface NotationSigner {
  subject: string
  /** `sha256:<hex>` of the leaf certificate's DER */
  fingerprint: string
  /** the root the chain ended at: its subject and `sha256:<hex>` */
  root: {subject: string; fingerprint: string}
  signingTime: string
}

export interface NotationRefusal {
  rank: number
  reason: string
}

export type NotationChecked = {ok: true; signer: NotationSigner} | {ok: false; refusal: NotationRefusal}

const refuse = (rank: number, reason: string): NotationChecked => ({ok: false, refusal: {rank, reason}})

export const certFingerprint = (c: X509Certificate) => `sha256:${createHash('sha256').update(c.raw).digest('hex')}`
const cn = (c: X509Certificate) => c.subject.split('\n').join(', ')

/** Reads a PEM file of one or more certificates (the root CA); anything else is exit 4 naming the file. */
export function parseNotationRoot(pem: string, file: string): NotationRoot {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new FerryError('trust', 'BAD_NOTATION_CA', `${file}: no PEM certificate in it; give the root CA certificate (PEM) the signatures must chain to`)
  try {
    return {file, certs: blocks.map((b) => new X509Certificate(b))}
  } catch (err) {
    throw new FerryError('trust', 'BAD_NOTATION_CA', `${file}: not a readable X.509 certificate (${(err as Error).message})`)
  }
}

const b64url = (text: unknown): Buffer | undefined =>
  typeof text === 'string' && /^[A-Za-z0-9_-]*$/.test(text) ? Buffer.from(text, 'base64url') : undefined

function parseJson(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8'))
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined
  } catch {
    return undefined
  }
}

const ALGS: Record<string, {hash: string; key: 'rsa' | 'ec'; curve?: string}> = {
  PS256: {hash: 'sha256', key: 'rsa'},
  PS384: {hash: 'sha384', key: 'rsa'},
  PS512: {hash: 'sha512', key: 'rsa'},
  ES256: {hash: 'sha256', key: 'ec', curve: 'prime256v1'},
  ES384: {hash: 'sha384', key: 'ec', curve: 'secp384r1'},
  ES512: {hash: 'sha512', key: 'ec', curve: 'secp521r1'},
}

const HASH_BYTES: Record<string, number> = {sha256: 32, sha384: 48, sha512: 64}

function signatureVerifies(alg: string, leaf: X509Certificate, data: Buffer, signature: Buffer): boolean | string {
  const a = ALGS[alg]
  if (!a) return `the signature algorithm ${alg} is not one notation allows (PS256/384/512, ES256/384/512)`
  const key = leaf.publicKey
  if (key.asymmetricKeyType !== (a.key === 'rsa' ? 'rsa' : 'ec')) return `the signature algorithm ${alg} does not fit the leaf certificate's ${key.asymmetricKeyType} key`
  try {
    if (a.key === 'rsa') return verify(a.hash, data, {key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[a.hash]}, signature)
    return verify(a.hash, data, {key, dsaEncoding: 'ieee-p1363'}, signature)
  } catch {
    return false
  }
}

/** Whether a certificate is valid at `now`; the reason when not. */
function validity(c: X509Certificate, now: Date, role: string): string | undefined {
  if (Date.parse(c.validFrom) > now.getTime()) return `the ${role} certificate (${cn(c)}) is not valid before ${new Date(c.validFrom).toISOString()}`
  if (Date.parse(c.validTo) <= now.getTime()) return `the ${role} certificate (${cn(c)}) expired at ${new Date(c.validTo).toISOString()}`
  return undefined
}

/**
 * The chain of `x5c` (leaf first) up to one of `root`'s certificates: each issued and signed by
 * the next, every issuer a CA, all valid at `now`; the leaf allowed to sign code.
 * Returns the root reached, or why not.
 */
function checkChain(chain: X509Certificate[], root: NotationRoot, now: Date): {root: X509Certificate} | {reason: string; rank: number} {
  const leaf = chain[0]
  const usage = keyUsage(leaf.raw)
  if (!usage?.has('digitalSignature')) return {rank: 3, reason: `the leaf certificate (${cn(leaf)}) lacks the key usage digitalSignature`}
  const eku = leaf.keyUsage
  if (!eku?.includes(CODE_SIGNING)) return {rank: 3, reason: `the leaf certificate (${cn(leaf)}) lacks the extended key usage codeSigning`}
  if (leaf.ca) return {rank: 3, reason: `the leaf certificate (${cn(leaf)}) is a CA certificate, not a signing certificate`}
  for (let i = 0; i + 1 < chain.length; i++) {
    const [child, issuer] = [chain[i], chain[i + 1]]
    if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey)) return {rank: 2, reason: `the certificate chain is broken: ${cn(child)} is not signed by ${cn(issuer)}`}
    if (!issuer.ca) return {rank: 2, reason: `the certificate chain is broken: ${cn(issuer)} is not a CA`}
  }
  const top = chain[chain.length - 1]
  const reached = root.certs.find((r) => r.raw.equals(top.raw)) ?? root.certs.find((r) => top.checkIssued(r) && top.verify(r.publicKey))
  if (!reached) return {rank: 2, reason: `the certificate chain (${cn(top)}, issued by ${top.issuer.split('\n').join(', ')}) does not lead to the root in ${root.file}`}
  if (!reached.ca) return {rank: 2, reason: `the root in ${root.file} (${cn(reached)}) is not a CA certificate`}
  const roles = chain.map((_, i) => (i === 0 ? 'leaf' : 'intermediate'))
  for (const [i, c] of [...chain, reached].entries()) {
    const why = validity(c, now, roles[i] ?? 'root')
    if (why) return {rank: 3, reason: why}
  }
  return {root: reached}
}

/** The artifact a signature must be for: the manifest's descriptor. */
export interface NotationTarget {
  mediaType: string
  digest: string
  size: number
}

/**
 * One notation signature envelope, checked: the JWS signature with the leaf's key over
 * `protected.payload`, the protected header notation requires, the chain to `root`, and the
 * payload's `targetArtifact` equal to `target`.
 */
export function checkNotationEnvelope(envelopeType: string, bytes: Buffer, root: NotationRoot, target: NotationTarget, now: Date): NotationChecked {
  const parsed = envelopeType === JWS_ENVELOPE ? parseJwsEnvelope(bytes) : envelopeType === COSE_ENVELOPE ? parseCoseEnvelope(bytes) : `the signature envelope is ${envelopeType}, not ${JWS_ENVELOPE} or ${COSE_ENVELOPE}`
  if (typeof parsed === 'string') return refuse(1, parsed)
  const {header, payload: payloadBytes} = parsed
  if (parsed.chain.length === 0) return refuse(1, 'the envelope carries no certificate chain')
  let chain: X509Certificate[]
  try {
    chain = parsed.chain.map((c) => new X509Certificate(c))
  } catch {
    return refuse(1, 'the certificate chain in the envelope is not readable X.509')
  }
  const ok = signatureVerifies(parsed.alg, chain[0], parsed.signed, parsed.signature)
  if (typeof ok === 'string') return refuse(1, ok)
  if (!ok) return refuse(2, `the signature does not verify with the leaf certificate's key (${cn(chain[0])}): the envelope is damaged, truncated or altered`)
  const linked = checkChain(chain, root, now)
  if ('reason' in linked) return refuse(linked.rank, linked.reason)
  const headerWhy = checkProtectedHeader(header, now)
  if (headerWhy) return refuse(3, headerWhy)
  const payload = parseJson(payloadBytes)
  const t = payload?.targetArtifact as Partial<NotationTarget> | undefined
  if (!t || typeof t !== 'object') return refuse(4, 'the signed payload has no targetArtifact')
  if (t.digest !== target.digest) return refuse(4, `the signed payload is for ${String(t.digest)}, not this artifact`)
  if (t.size !== target.size) return refuse(4, `the signed payload gives the artifact ${String(t.size)} bytes, its manifest is ${target.size}`)
  if (t.mediaType !== target.mediaType) return refuse(4, `the signed payload gives the artifact the media type ${String(t.mediaType)}, its manifest is ${target.mediaType}`)
  const leaf = chain[0]
  return {ok: true, signer: {subject: cn(leaf), fingerprint: certFingerprint(leaf), root: {subject: cn(linked.root), fingerprint: certFingerprint(linked.root)}, signingTime: String(header[SIGNING_TIME] ?? header[AUTHENTIC_TIME])}}
}

/** A JWS envelope (JSON serialization, notation's header.x5c) in the common shape; a reason string when it is not one. */
function parseJwsEnvelope(bytes: Buffer): ParsedEnvelope | string {
  const env = parseJson(bytes)
  if (!env) return 'the JWS envelope is not JSON (damaged or truncated)'
  const protectedBytes = b64url(env.protected)
  const payload = b64url(env.payload)
  const signature = b64url(env.signature)
  if (!protectedBytes || !payload || !signature || signature.length === 0) return 'the JWS envelope lacks its protected header, payload or signature'
  const header = parseJson(protectedBytes)
  if (!header) return 'the JWS protected header is not JSON'
  const x5c = (env.header as {x5c?: unknown} | undefined)?.x5c
  const chain = Array.isArray(x5c) && x5c.every((c) => typeof c === 'string') ? (x5c as string[]).map((c) => Buffer.from(c, 'base64')) : []
  return {alg: String(header.alg), header, chain, payload, signed: Buffer.from(`${env.protected as string}.${env.payload as string}`, 'ascii'), signature}
}

/** The protected header's required fields (notation's JWS envelope): cty, crit, signing scheme and time, expiry. */
function checkProtectedHeader(h: Record<string, unknown>, now: Date): string | undefined {
  if (h.cty !== NOTATION_PAYLOAD) return `the protected header's cty is ${JSON.stringify(h.cty)}, not ${NOTATION_PAYLOAD}`
  const crit = h.crit
  if (!Array.isArray(crit) || !crit.includes(SIGNING_SCHEME)) return `the protected header's crit list does not name ${SIGNING_SCHEME}`
  for (const c of crit) {
    if (typeof c !== 'string' || !KNOWN_CRITICAL.has(c)) return `the protected header marks ${JSON.stringify(c)} critical, which notation does not define`
    if (!(c in h)) return `the protected header marks ${c} critical but does not carry it`
  }
  if (EXPIRY in h && !crit.includes(EXPIRY)) return `the protected header carries ${EXPIRY} without marking it critical`
  const scheme = h[SIGNING_SCHEME]
  if (scheme === 'notary.x509') {
    if (typeof h[SIGNING_TIME] !== 'string' || Number.isNaN(Date.parse(h[SIGNING_TIME] as string))) return `the protected header has no ${SIGNING_TIME}`
  } else if (scheme === 'notary.x509.signingAuthority') {
    if (typeof h[AUTHENTIC_TIME] !== 'string' || !crit.includes(AUTHENTIC_TIME)) return `the protected header has no critical ${AUTHENTIC_TIME}`
  } else {
    return `the signing scheme ${JSON.stringify(scheme)} is not notary.x509 or notary.x509.signingAuthority`
  }
  if (EXPIRY in h) {
    const at = Date.parse(String(h[EXPIRY]))
    if (Number.isNaN(at) || at <= now.getTime()) return `the signature expired at ${String(h[EXPIRY])}`
  }
  return undefined
}
