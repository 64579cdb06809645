// Notation's COSE envelope: a COSE_Sign1 (RFC 9052, CBOR tag 18) whose protected header carries
// alg, crit, content type and notation's labels, whose unprotected header carries the chain
// (x5chain, label 33), signed over the Sig_structure ["Signature1", protected, h'', payload].
import {CborTag, decodeCbor, encodeCbor} from './cbor.js'

/** An envelope in the shape both JWS and COSE reduce to: what was signed and the header's fields by name. */
export interface ParsedEnvelope {
  alg: string
  header: Record<string, unknown>
  chain: Buffer[]
  payload: Buffer
  signed: Buffer
  signature: Buffer
}

const COSE_ALGS: Record<number, string> = {[-7]: 'ES256', [-35]: 'ES384', [-36]: 'ES512', [-37]: 'PS256', [-38]: 'PS384', [-39]: 'PS512'}
/** COSE header labels notation uses, by the names the JWS envelope gives them */
const LABELS: Record<number, string> = {1: 'alg', 2: 'crit', 3: 'cty'}
const X5CHAIN = 33
/** notation's time labels are CBOR tag 1 (epoch seconds) in COSE, RFC 3339 strings in JWS */
const TIMES = new Set(['io.cncf.notary.signingTime', 'io.cncf.notary.expiry', 'io.cncf.notary.authenticSigningTime'])

/** A COSE_Sign1 envelope in the common shape; a reason string when it is not one. */
export function parseCoseEnvelope(bytes: Buffer): ParsedEnvelope | string {
  let top
  try {
    top = decodeCbor(bytes)
  } catch (err) {
    return `the COSE envelope is not CBOR (${(err as Error).message}: damaged or truncated)`
  }
  const sign1 = top instanceof CborTag ? (top.tag === 18 ? top.value : undefined) : top
  if (!Array.isArray(sign1) || sign1.length !== 4) return 'the COSE envelope is not a COSE_Sign1 (tag 18, four items)'
  const [protectedBytes, unprotected, payload, signature] = sign1
  if (!Buffer.isBuffer(protectedBytes) || !(unprotected instanceof Map) || !Buffer.isBuffer(payload) || !Buffer.isBuffer(signature) || signature.length === 0) {
    return 'the COSE_Sign1 lacks its protected header, payload or signature'
  }
  let map
  try {
    map = decodeCbor(protectedBytes)
  } catch {
    return 'the COSE protected header is not CBOR'
  }
  if (!(map instanceof Map)) return 'the COSE protected header is not a map'
  const header: Record<string, unknown> = {}
  for (const [k, v] of map) {
    const name = typeof k === 'number' ? LABELS[k] : typeof k === 'string' ? k : undefined
    if (!name) continue
    if (name === 'alg') header.alg = typeof v === 'number' ? (COSE_ALGS[v] ?? `COSE algorithm ${v}`) : String(v)
    else if (TIMES.has(name) && v instanceof CborTag && v.tag === 1 && typeof v.value === 'number') header[name] = new Date(v.value * 1000).toISOString()
    else header[name] = v
  }
  const x5 = unprotected.get(X5CHAIN)
  const chain = Buffer.isBuffer(x5) ? [x5] : Array.isArray(x5) && x5.every((c) => Buffer.isBuffer(c)) ? (x5 as Buffer[]) : []
  const signed = encodeCbor(['Signature1', protectedBytes, Buffer.alloc(0), payload])
  return {alg: String(header.alg), header, chain, payload, signed, signature}
}
