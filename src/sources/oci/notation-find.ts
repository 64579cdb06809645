// Finding the Notary Project (notation) signatures of an artifact: its OCI 1.1 referrers (the
// registry's API, else the `sha256-<hex>` tag index) of artifact type
// application/vnd.cncf.notary.signature, each a manifest whose one layer is the envelope.
import {COSE_ENVELOPE, JWS_ENVELOPE, NOTATION_SIGNATURE} from '../../trust/notation.js'
import {at, json, readManifest, referrers} from './cosign-find.js'
import type {Descriptor} from './document.js'
import {MEDIA} from './media-types.js'
import type {RegistryReference} from './reference.js'
import type {RegistryPool} from './registry-source.js'
import type {FetchedDocument} from './source-types.js'

const MAX_ENVELOPE = 1 << 20

/** One notation signature as found: its manifest, config and envelope, and the digest it is a referrer of. */
export interface FoundNotation {
  manifest: FetchedDocument
  config: {desc: Descriptor; bytes: Buffer}
  envelope: {desc: Descriptor; bytes: Buffer}
  subject: string
  via: string
}

const ENVELOPES = new Set([JWS_ENVELOPE, COSE_ENVELOPE])
const isDigest = (d: unknown) => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d)

/** A signature manifest's config and envelope, read whole (small), checked against their digests; undefined when it holds no envelope. */
export async function notationBlobs(pool: RegistryPool, ref: RegistryReference, doc: FetchedDocument): Promise<Pick<FoundNotation, 'config' | 'envelope'> | undefined> {
  const body = json(doc)
  const layer = body.layers?.find((l) => ENVELOPES.has(l.mediaType ?? ''))
  const config = body.config
  if (!layer || !config || !isDigest(layer.digest) || !isDigest(config.digest) || layer.size > MAX_ENVELOPE || config.size > MAX_ENVELOPE) return undefined
  const source = at(pool, ref, {digest: doc.digest})
  const desc = (d: Descriptor) => ({mediaType: d.mediaType ?? '', digest: d.digest, size: d.size})
  return {config: {desc: desc(config), bytes: await source.config(desc(config))}, envelope: {desc: desc(layer), bytes: await source.config(desc(layer))}}
}

/** Every notation signature that is a referrer of `digest` in `ref`'s repository; none is an empty list. */
export async function findNotationSignatures(pool: RegistryPool, ref: RegistryReference, digest: string): Promise<FoundNotation[]> {
  const {list, via} = await referrers(pool, ref, digest)
  const found: FoundNotation[] = []
  for (const d of list.filter((x) => x.artifactType === NOTATION_SIGNATURE || x.artifactType === undefined)) {
    const doc = await readManifest(at(pool, ref, {digest: d.digest}), {...d, mediaType: d.mediaType || MEDIA.ociManifest})
    if (!doc) continue
    const body = json(doc)
    if ((body.artifactType ?? body.config?.mediaType) !== NOTATION_SIGNATURE) continue
    // A referrer names what it signs: one that names another artifact is not this one's.
    if (body.subject?.digest !== digest) continue
    const blobs = await notationBlobs(pool, ref, doc)
    if (blobs) found.push({manifest: doc, ...blobs, subject: digest, via})
  }
  return found
}
