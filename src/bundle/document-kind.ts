// Which artifacts of bundle.json are Ferry's own documents (the SBOM, the provenance): what
// checking a bundle needs to know of them, without the code that makes them.
import {GENERATED_SOURCE} from '../attest/identity.js'
import type {BundleArtifact} from './format.js'

/** The SBOM or provenance entry of bundle.json: written by Ferry at build, not fetched. */
export function isBundleDocument(a: Pick<BundleArtifact, 'kind' | 'source'>): boolean {
  return a.kind === 'file' && a.source === GENERATED_SOURCE
}

/** The largest SBOM or provenance a bundle may carry (bytes). */
export const DOCUMENT_MAX = 16 << 20
