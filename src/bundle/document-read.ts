// `bundle sbom` and `bundle provenance`: the stored bytes of a document a bundle carries, found by
// seeking over the tar headers (fast on any size) and checked against the digest bundle.json gives.
import type {PublicKey} from 'openpgp'
import {readFully} from '../chunks/sources.js'
import {asLocalIoError, integrityError, usageError} from '../errors.js'
import {scanTar} from '../sources/oci/tar-index.js'
import {writeFileAtomic} from '../store/atomic-file.js'
import {sha256Of} from '../store/hashing.js'
import {openArchiveRegion} from './archive-source.js'
import {DOCUMENT_MAX, isBundleDocument} from './documents.js'
import {ENTRY, parseBundleJson, type BundleArtifact, type BundleManifest} from './format.js'
import type {BundleInput} from './input.js'

export interface StoredDocument {
  manifest: BundleManifest
  artifact: BundleArtifact
  bytes: Buffer
  /** fingerprints whose signatures over bundle.json verified (keys were given) */
  verifiedBy?: string[]
}

/**
 * The document of `mediaType` (the SBOM or the provenance) in a bundle. With `keys`, bundle.json's
 * signature is checked first (exit 4 when none verifies); the document's bytes are always checked
 * against bundle.json's digest (exit 3). A bundle without one is exit 2; so is a delta that leaves
 * it to its base.
 */
export async function readStoredDocument(input: BundleInput, mediaType: string, what: string, keys: PublicKey[] = []): Promise<StoredDocument> {
  const source = await openArchiveRegion(input.label, 0, input.size)
  try {
    const readAt = async (length: number, position: number) => {
      const bytes = Buffer.alloc(length)
      if ((await readFully(source, bytes, 0, length, position)) !== length) throw integrityError('TRUNCATED', `${input.label}: the archive ends in the middle of an entry`)
      return bytes
    }
    const members = await scanTar(readAt, input.size, input.label)
    const head = members.get(ENTRY.manifest)
    if (!head || members.keys().next().value !== ENTRY.manifest) throw integrityError('NOT_A_BUNDLE', `${input.label} is not a Ferry bundle (no bundle.json first)`)
    if (head.size > 16 << 20) throw integrityError('ENTRY_TOO_LARGE', `${ENTRY.manifest} is ${head.size} bytes, above the limit of ${16 << 20}`)
    const bundleJson = await readAt(head.size, head.offset)
    let verifiedBy: string[] | undefined
    if (keys.length) {
      const sig = members.get(ENTRY.signature)
      if (!sig || sig.size > 1 << 20) throw integrityError('UNSIGNED', `${input.label} has no bundle.json.asc`)
      const {verifyDetached} = await import('../trust/verify.js')
      verifiedBy = (await verifyDetached(bundleJson, await readAt(sig.size, sig.offset), keys, {what: 'bundle.json.asc'})).signers.map((s) => s.fingerprint)
    }
    const manifest = parseBundleJson(bundleJson)
    const artifact = manifest.artifacts.find((a) => isBundleDocument(a) && a.mediaType === mediaType)
    if (!artifact) throw usageError('NO_DOCUMENT', `${input.label} (${manifest.name} ${manifest.version}) carries no ${what}: it was built by a Ferry that did not write one`)
    const member = members.get(ENTRY.blobPrefix + artifact.digest.slice('sha256:'.length))
    if (!member) {
      if (manifest.base && manifest.omitted?.includes(artifact.digest)) {
        throw usageError('DOCUMENT_IN_BASE', `${input.label} is a delta that leaves its ${what} to its base ${manifest.base.name} ${manifest.base.version}: read it there`)
      }
      throw integrityError('MISSING_BLOB', `${input.label}: the ${what} ${artifact.digest} that bundle.json names is missing`)
    }
    if (member.size !== artifact.size) throw integrityError('SIZE_MISMATCH', `${input.label}: the ${what} is ${member.size} bytes; bundle.json says ${artifact.size}`)
    if (member.size > DOCUMENT_MAX) throw integrityError('ENTRY_TOO_LARGE', `${input.label}: the ${what} is ${member.size} bytes, above the limit of ${DOCUMENT_MAX}`)
    const bytes = await readAt(member.size, member.offset)
    if (sha256Of(bytes) !== artifact.digest) throw integrityError('DIGEST_MISMATCH', `${input.label}: the ${what} does not match the digest signed in bundle.json (${artifact.digest}): the bundle is corrupt`)
    return {manifest, artifact, bytes, ...(verifiedBy ? {verifiedBy} : {})}
  } finally {
    await source.close()
  }
}

/** Writes a document's bytes to `path` as they are (temp file, fsync, rename). */
export async function writeDocumentFile(path: string, bytes: Buffer): Promise<void> {
  try {
    await writeFileAtomic(path, bytes)
  } catch (err) {
    throw asLocalIoError(err, `writing ${path}`)
  }
}
