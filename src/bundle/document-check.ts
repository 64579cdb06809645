// `bundle verify` reads the SBOM and provenance a bundle carries and checks that they describe
// it: every artifact of bundle.json listed with its digest. Their bytes are already covered by
// the signed digests; this catches a bundle whose documents were made for other contents.
import {PROVENANCE_MEDIA_TYPE, SBOM_MEDIA_TYPE} from '../attest/identity.js'
import {SLSA_PROVENANCE, STATEMENT_TYPE} from '../attest/provenance.js'
import {integrityError} from '../errors.js'
import {isBundleDocument} from './documents.js'
import type {BundleArtifact, BundleManifest} from './format.js'

const hex = (digest: string) => digest.slice('sha256:'.length)

function parse(bytes: Buffer, a: BundleArtifact): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'))
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {
    // reported below
  }
  throw integrityError('DOCUMENT_MISMATCH', `${a.name} is not a JSON document`)
}

function mismatch(doc: BundleArtifact, what: string): never {
  throw integrityError('DOCUMENT_MISMATCH', `${doc.name} does not describe this bundle: ${what}`)
}

function checkSbom(doc: BundleArtifact, sbom: Record<string, unknown>, artifacts: BundleArtifact[]): void {
  if (sbom.bomFormat !== 'CycloneDX' || sbom.specVersion !== '1.6') mismatch(doc, 'not a CycloneDX 1.6 BOM')
  const components = Array.isArray(sbom.components) ? (sbom.components as Array<Record<string, unknown>>) : []
  const byRef = new Map(components.map((c) => [c['bom-ref'], c]))
  for (const a of artifacts) {
    const c = byRef.get(a.name)
    const hashes = Array.isArray(c?.hashes) ? (c.hashes as Array<{alg?: unknown; content?: unknown}>) : []
    if (!hashes.some((h) => h.alg === 'SHA-256' && h.content === hex(a.digest))) mismatch(doc, `${a.name} ${a.digest} is not listed`)
  }
  if (components.length !== artifacts.length) mismatch(doc, `it lists ${components.length} component(s), the bundle carries ${artifacts.length} artifact(s)`)
}

function checkProvenance(doc: BundleArtifact, statement: Record<string, unknown>, artifacts: BundleArtifact[]): void {
  if (statement._type !== STATEMENT_TYPE || statement.predicateType !== SLSA_PROVENANCE) mismatch(doc, 'not an in-toto statement of SLSA provenance v1')
  const subjects = Array.isArray(statement.subject) ? (statement.subject as Array<{name?: unknown; digest?: {sha256?: unknown}}>) : []
  const named = new Map(subjects.map((s) => [s.name, s.digest?.sha256]))
  for (const a of artifacts) if (named.get(a.name) !== hex(a.digest)) mismatch(doc, `subject ${a.name} ${a.digest} is missing or has another digest`)
  if (subjects.length !== artifacts.length) mismatch(doc, `it has ${subjects.length} subject(s), the bundle ${artifacts.length} artifact(s)`)
}

/**
 * Checks each document the bundle carries (`content` gives its verified bytes; a delta's
 * document that only its base carries is skipped when the base is not given). The names of those checked.
 */
export function checkBundleDocuments(manifest: BundleManifest, content: (digest: string) => Buffer | undefined): string[] {
  const documents = manifest.artifacts.filter(isBundleDocument)
  const shipped = manifest.artifacts.filter((a) => !isBundleDocument(a))
  const checked: string[] = []
  for (const doc of documents) {
    const bytes = content(doc.digest)
    if (!bytes) continue
    if (doc.mediaType === SBOM_MEDIA_TYPE) checkSbom(doc, parse(bytes, doc), shipped)
    else if (doc.mediaType === PROVENANCE_MEDIA_TYPE) checkProvenance(doc, parse(bytes, doc), manifest.artifacts.filter((a) => a !== doc))
    else continue
    checked.push(doc.name)
  }
  return checked
}
