import {trustError} from '../../errors.js'
import {checkNotationEnvelope, type NotationRefusal, type NotationRoot, type NotationSigner, type NotationTarget} from '../../trust/notation.js'
import {referrersTag} from './cosign-find.js'
import type {FoundNotation} from './notation-find.js'

export interface VerifiedNotation {
  signature: FoundNotation
  signer: NotationSigner
}

/**
 * The first of `signatures` whose envelope verifies against `root` for the artifact it is a
 * referrer of (`targets`, by digest); else exit 4 in one line naming the VM artifact, the root,
 * the most telling reason and what to do.
 */
export function verifyNotation(what: string, root: NotationRoot, targets: Map<string, NotationTarget>, signatures: FoundNotation[], now: Date): VerifiedNotation {
  let best: NotationRefusal | undefined
  for (const signature of signatures) {
    const target = targets.get(signature.subject)
    if (!target) continue
    const result = checkNotationEnvelope(signature.envelope.desc.mediaType, signature.envelope.bytes, root, target, now)
    if (result.ok) return {signature, signer: result.signer}
    if (!best || result.refusal.rank > best.rank) best = result.refusal
  }
  const digests = [...targets.keys()]
  if (!best) {
    throw trustError(
      'VM_UNSIGNED',
      `${what}: notation root ${root.file}: no notation signature: the registry lists no referrer of type application/vnd.cncf.notary.signature for ${digests.join(' or ')} (referrers API or tag ${referrersTag(digests[0])}); sign it with notation, or drop "notation" from the entry to take it unsigned`,
    )
  }
  throw trustError('VM_SIGNATURE_INVALID', `${what}: notation root ${root.file}: ${best.reason}; the artifact is not what its publisher signed: check the reference and that notation.ca is the publisher's root`)
}
