// Names Ferry gives the documents it writes about a bundle, and the identifiers inside them.
// The repository has no project URL, so the build type and builder are URNs Ferry defines
// (docs/provenance.md says what they mean); they change only with the meaning of the documents.
import {createHash} from 'node:crypto'

export const SBOM_MEDIA_TYPE = 'application/vnd.cyclonedx+json'
export const PROVENANCE_MEDIA_TYPE = 'application/vnd.in-toto+json'
/** the artifact names the documents carry in bundle.json */
export const SBOM_NAME = 'ferry/sbom.cdx.json'
export const PROVENANCE_NAME = 'ferry/provenance.intoto.json'
/** the `source` of a document Ferry wrote itself: it has no upstream */
export const GENERATED_SOURCE = 'ferry:generated'

export const BUILD_TYPE = 'urn:ferry:build-type:bundle:v1'
export const BUILDER_ID = 'urn:ferry:builder:ferry-cli'

export {FERRY_VERSION} from '../version.js'

/** RFC 4122 URL namespace: a name-based (v5) UUID of a URN. */
const URL_NAMESPACE = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex')

/**
 * A version 5 UUID named by `urn:ferry:<what>:sha256:<hex of content>`: the same content always
 * gets the same serial number, and different content another one.
 */
export function contentUuid(what: string, content: Uint8Array | string): string {
  const digest = createHash('sha256').update(content).digest('hex')
  const b = createHash('sha1').update(URL_NAMESPACE).update(`urn:ferry:${what}:sha256:${digest}`).digest().subarray(0, 16)
  b[6] = (b[6] & 0x0f) | 0x50
  b[8] = (b[8] & 0x3f) | 0x80
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** One serialisation for every document: equal inputs give equal bytes. */
export function documentBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 2) + '\n')
}
