import {integrityError} from '../errors.js'

/** What the caller knows about a blob before it arrives; anything given is checked. */
export interface BlobExpectation {
  digest?: string
  size?: number
  /** names the artifact in error messages, e.g. `k3s-airgap-images-amd64.tar.zst` */
  what?: string
}

export interface BlobInfo {
  digest: string
  size: number
  /** a download cut into chunks as it arrived (BlobWriter.chunkWith): its chunk records */
  chunks?: Buffer
}

/** Compares what arrived with what was expected: SIZE_MISMATCH or DIGEST_MISMATCH (exit 3). */
export function checkBlob(actual: BlobInfo, expect: BlobExpectation, what: string): BlobInfo {
  if (expect.size !== undefined && actual.size !== expect.size) {
    throw integrityError(
      'SIZE_MISMATCH',
      `${what}: size mismatch: expected ${expect.size} bytes, got ${actual.size}; the data is truncated or not the expected content`,
      {expected: expect.size, actual: actual.size},
    )
  }
  if (expect.digest !== undefined && actual.digest !== expect.digest) {
    throw integrityError(
      'DIGEST_MISMATCH',
      `${what}: digest mismatch: expected ${expect.digest}, got ${actual.digest}; the data is corrupt or changed at its source (re-lock if the change is legitimate)`,
      {expected: expect.digest, actual: actual.digest},
    )
  }
  return actual
}
