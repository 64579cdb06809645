// A cosign attestation (`cosign attest`): a DSSE envelope over an in-toto Statement v1 about an
// image. Checked as cosign checks it: the signature over DSSE's PAE encoding with the image's key,
// and the statement's subject naming the image's digest.
import {type CosignKey, IN_TOTO_PAYLOAD, IN_TOTO_STATEMENT, pae, verifyWithKey} from './cosign.js'

const decode = (text: unknown) => (typeof text === 'string' && text.length ? Buffer.from(text, 'base64') : undefined)

/** Whether `envelope` (a DSSE envelope's JSON) is signed by `key` over a statement whose subject is `digest`. */
export function attestationSignedBy(key: CosignKey, digest: string, envelope: Buffer): boolean {
  let env: {payloadType?: unknown; payload?: unknown; signatures?: Array<{sig?: unknown}>}
  try {
    env = JSON.parse(envelope.toString('utf8'))
  } catch {
    return false
  }
  const payload = decode(env.payload)
  if (!payload || env.payloadType !== IN_TOTO_PAYLOAD || !Array.isArray(env.signatures)) return false
  const signed = pae(IN_TOTO_PAYLOAD, payload)
  if (!env.signatures.some((s) => {
    const sig = decode(s?.sig)
    return !!sig && verifyWithKey(key, signed, sig)
  })) return false
  try {
    const statement = JSON.parse(payload.toString('utf8')) as {_type?: unknown; subject?: Array<{digest?: {sha256?: unknown}}>}
    return statement._type === IN_TOTO_STATEMENT && Array.isArray(statement.subject) && statement.subject.some((s) => s?.digest?.sha256 === digest.slice('sha256:'.length))
  } catch {
    return false
  }
}
