import {trustError} from '../../errors.js'
import {checkSigstoreBundle, checkSimpleSigning, SIGNATURE_ANNOTATION, SIGSTORE_BUNDLE, SIMPLE_SIGNING, type CosignKey, type Refusal} from '../../trust/cosign.js'
import {findCosignSignatures, type FoundSignature, referrersTag, sigTag} from './cosign-find.js'
import type {RegistryReference} from './reference.js'
import type {RegistryPool} from './registry-source.js'

/** Which key verified which signature manifest. */
export interface VerifiedSignature {
  key: CosignKey
  signature: FoundSignature
}

/** Whether one found signature verifies with one key for `digest`. */
function check(key: CosignKey, digest: string, sig: FoundSignature) {
  const wanted = sig.form === 'simplesigning' ? SIMPLE_SIGNING : SIGSTORE_BUNDLE
  const results = sig.layers.filter((layer) => layer.desc.mediaType === wanted).map((layer) =>
    sig.form === 'simplesigning' ? checkSimpleSigning(key, digest, layer.bytes, layer.desc.annotations?.[SIGNATURE_ANNOTATION]) : checkSigstoreBundle(key, digest, layer.bytes),
  )
  return results.find((r) => r.ok) ?? results.reduce((best, r) => (!r.ok && (best.ok || r.refusal.rank > best.refusal.rank) ? r : best))
}

/**
 * The first of `signatures` that one of `keys` verifies for the image `digest`; else exit 4 in one
 * line naming the image, the key(s) and the most telling reason.
 */
export function verifyCosign(image: string, digest: string, keys: CosignKey[], signatures: FoundSignature[]): VerifiedSignature {
  let best: Refusal | undefined
  for (const signature of signatures) {
    for (const key of keys) {
      const result = check(key, digest, signature)
      if (result.ok) return {key, signature}
      if (!best || result.refusal.rank > best.rank) best = result.refusal
    }
  }
  const named = keys.map((k) => `${k.file} (${k.fingerprint.slice(0, 19)})`).join(', ')
  const reason =
    best?.reason ?? `no cosign signature: the repository has neither the tag ${sigTag(digest)} nor a sigstore bundle referrer (referrers API or tag ${referrersTag(digest)})`
  throw trustError(signatures.length === 0 ? 'IMAGE_UNSIGNED' : 'IMAGE_SIGNATURE_INVALID', `${image}@${digest}: cosign key${keys.length > 1 ? 's' : ''} ${named}: ${reason}`)
}

/** Finds the image's cosign signatures in its registry and checks them against `keys` (see verifyCosign). */
export async function checkImageSignature(pool: RegistryPool, ref: RegistryReference, image: string, digest: string, keys: CosignKey[]): Promise<VerifiedSignature> {
  return verifyCosign(image, digest, keys, await findCosignSignatures(pool, ref, digest))
}
