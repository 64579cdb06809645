import {createHash} from 'node:crypto'
import type {PublicKey} from 'openpgp'
import {verifyDetached} from '../trust/verify.js'
import {integrityError, trustError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import {checkBundleDocuments} from './document-check.js'
import {DOCUMENT_MAX, isBundleDocument} from './documents.js'
import {BundleManifest, ENTRY, parseBundleJson} from './format.js'
import {imageClosure, parseIndex} from './oci-closure.js'
import {readTar, type TarEntry} from './tar-reader.js'
import {sha256Of} from '../store/hashing.js'

const MAX_JSON = 16 << 20
/** manifests and configs are kept in memory to walk the image graph; layers never are */
const RETAIN_MAX = 4 << 20
const RETAIN_TOTAL = 64 << 20

/** Receives one blob's bytes during verification (device import); committed only once its digest matched. */
export interface BlobSink {
  /** The chunk's memory is reused once this resolves: finish with it (write it out) before resolving, or copy it. */
  write(chunk: Buffer): Promise<void>
  commit(): Promise<void>
  abort(): Promise<void>
}

/** Where a delta bundle's omitted blobs are expected to be. */
export interface BaseBlobs {
  /** sha256 digest of the base's bundle.json */
  digest: string
  has(digest: string): boolean
  /** bytes of a base manifest/index blob, to walk image graphs of a delta */
  content?(digest: string): Buffer | undefined
}

export interface VerifyOptions {
  /** trusted public keys; one signature from any of them is enough */
  keys: PublicKey[]
  now?: Date
  base?: BaseBlobs
  onProgress?: ProgressListener
  /** total archive size, for progress */
  totalSize?: number
  /** called after the signature verified, for each blob, to store it as it streams by */
  blobSink?: (digest: string, size: number) => Promise<BlobSink | undefined>
  /** a signature check the caller does itself (the device's trust store with its threshold) */
  checkSignature?: (bundleJson: Buffer, signature: Buffer) => Promise<Array<{fingerprint: string}>>
}

export interface VerifyReport {
  manifest: BundleManifest
  bundleJson: Buffer
  /** sha256 digest of bundle.json: identifies the release */
  manifestDigest: string
  signers: Array<{fingerprint: string}>
  blobs: number
  bytes: number
  /** where each blob's bytes start in the archive (for random reads: a chunked artifact's pack) */
  offsets: Map<string, number>
  /** the SBOM and provenance found to describe the bundle (absent ones, or left to a base not given, are not) */
  documentsChecked: string[]
}

const sha = sha256Of

async function readSmall(entry: TarEntry, limit: number): Promise<Buffer> {
  if (entry.size > limit) throw integrityError('ENTRY_TOO_LARGE', `${entry.path} is ${entry.size} bytes, above the limit of ${limit}`)
  const parts: Buffer[] = []
  for await (const chunk of entry.body) parts.push(Buffer.from(chunk))
  return Buffer.concat(parts)
}

function expectEntry(entry: TarEntry | undefined, name: string): TarEntry {
  if (!entry) throw integrityError('MISSING_ENTRY', `the bundle has no ${name} (truncated or not a bundle)`)
  if (entry.path !== name || entry.type !== 'File') {
    throw integrityError('UNEXPECTED_ENTRY', `expected ${name} but found "${entry.path}": entries are out of place or unknown`)
  }
  return entry
}


/**
 * Verifies a bundle archive in one streaming pass: bundle.json and its
 * signature first (nothing else is trusted before that), then the OCI layout
 * and every blob, each hashed as it streams by. Refuses unknown, missing,
 * duplicated, misplaced or unsafe entries, wrong digests and sizes, and
 * image graphs that do not close. Memory stays flat whatever the size.
 */
export async function verifyBundleStream(input: AsyncIterable<Buffer | Uint8Array>, options: VerifyOptions): Promise<VerifyReport> {
  let consumed = 0
  let lastReport = 0
  const onBytes = (n: number) => {
    consumed = n
    if (options.onProgress && n - lastReport >= 8 << 20) {
      lastReport = n
      options.onProgress({phase: 'verify', done: n, total: options.totalSize})
    }
  }
  const entries = readTar(input, {onBytes})
  const next = async () => {
    const r = await entries.next()
    return r.done ? undefined : r.value
  }
  try {

    const bundleJson = await readSmall(expectEntry(await next(), ENTRY.manifest), MAX_JSON)
    const second = await next()
    if (second?.path === ENTRY.manifest) throw integrityError('DUPLICATE_ENTRY', 'bundle.json appears twice')
    if (second?.path !== ENTRY.signature) throw trustError('UNSIGNED', `the bundle carries no signature: bundle.json is not followed by bundle.json.asc`)
    const signature = await readSmall(expectEntry(second, ENTRY.signature), 1 << 20)
    // The signature is checked over the raw bytes before anything in them is parsed or believed.
    const signers = options.checkSignature
      ? await options.checkSignature(bundleJson, signature)
      : (await verifyDetached(bundleJson, signature, options.keys, {what: 'bundle.json.asc'})).signers
    const manifest = parseBundleJson(bundleJson)
    const now = options.now ?? new Date()
    if (Date.parse(manifest.expires) <= now.getTime()) {
      throw trustError('EXPIRED', `bundle ${manifest.name} ${manifest.version} expired at ${manifest.expires}`)
    }
    if (manifest.base && !options.base) {
      const missing = manifest.omitted ?? []
      throw integrityError(
        'DELTA_WITHOUT_BASE',
        `this is a delta from ${manifest.base.name} ${manifest.base.version}: give that bundle with --base; it lacks ${missing.length} blob(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
      )
    }
    if (manifest.base && options.base && options.base.digest !== manifest.base.digest) {
      throw integrityError('WRONG_BASE', `the base given is not ${manifest.base.name} ${manifest.base.version} (bundle.json digest differs)`)
    }

    const layout = await readSmall(expectEntry(await next(), ENTRY.layout), 4096)
    let layoutVersion: unknown
    try {
      layoutVersion = JSON.parse(layout.toString('utf8')).imageLayoutVersion
    } catch {
      layoutVersion = undefined
    }
    if (layoutVersion !== '1.0.0') throw integrityError('BAD_OCI_LAYOUT', 'oci-layout is not {"imageLayoutVersion":"1.0.0"}')
    const indexJson = await readSmall(expectEntry(await next(), ENTRY.index), MAX_JSON)
    if (sha(indexJson) !== manifest.index) throw integrityError('DIGEST_MISMATCH', `index.json does not match the digest signed in bundle.json`)
    const roots = parseIndex(indexJson)

    // Sizes known from the signed bundle.json; image blobs below the roots are learned from their manifests.
    const declared = new Map<string, number>()
    for (const a of manifest.artifacts) {
      // a chunked artifact of a delta is not carried: its pack is, beside its index
      if (a.delta) {
        if (!manifest.base) throw integrityError('BAD_BUNDLE_JSON', `${a.name} is to be rebuilt from a base, but the bundle is not a delta`)
        if (a.delta.index !== a.chunks?.index) throw integrityError('BAD_BUNDLE_JSON', `${a.name}: its delta names another chunk index than the artifact`)
        declared.set(a.delta.pack, a.delta.packSize)
      } else {
        declared.set(a.digest, a.size)
      }
      if (a.chunks) declared.set(a.chunks.index, a.chunks.size)
      if (a.cosign) declared.set(a.cosign.manifest.digest, a.cosign.manifest.size)
    }
    // Image signatures are carried beside the images, named by bundle.json rather than index.json
    // (so no tool importing the layout takes them for images); their blobs are walked the same way.
    const signatureRoots = manifest.artifacts.flatMap((a) => (a.cosign ? [a.cosign.manifest] : []))
    const omitted = new Set(manifest.omitted ?? [])
    // the SBOM and provenance are read whole, to check what they say (document-check.ts)
    const documents = new Set(manifest.artifacts.filter(isBundleDocument).map((a) => a.digest))
    const seen = new Map<string, number>()
    const offsets = new Map<string, number>()
    const retained = new Map<string, Buffer>()
    let retainedBytes = 0
    let previous = ''
    let blobBytes = 0

    for (let entry = await next(); entry; entry = await next()) {
      if (!entry.path.startsWith(ENTRY.blobPrefix) || entry.type !== 'File') {
        throw integrityError('UNEXPECTED_ENTRY', `unexpected entry "${entry.path}" after index.json`)
      }
      const hex = entry.path.slice(ENTRY.blobPrefix.length)
      if (!/^[0-9a-f]{64}$/.test(hex)) throw integrityError('UNEXPECTED_ENTRY', `"${entry.path}" is not a sha256 blob name`)
      const digest = `sha256:${hex}`
      if (digest === previous || seen.has(digest)) throw integrityError('DUPLICATE_ENTRY', `blob ${digest} appears twice`)
      if (digest < previous) throw integrityError('UNEXPECTED_ENTRY', `blob ${digest} is out of order (blobs are sorted by digest)`)
      previous = digest
      if (omitted.has(digest)) throw integrityError('UNEXPECTED_ENTRY', `blob ${digest} is listed as omitted but is present`)
      const want = declared.get(digest)
      if (want !== undefined && want !== entry.size) {
        throw integrityError('SIZE_MISMATCH', `blob ${digest} is ${entry.size} bytes; bundle.json says ${want}`)
      }
      const sink = await options.blobSink?.(digest, entry.size)
      const hash = createHash('sha256')
      const document = documents.has(digest)
      if (document && entry.size > DOCUMENT_MAX) throw integrityError('ENTRY_TOO_LARGE', `the SBOM or provenance ${digest} is ${entry.size} bytes, above the limit of ${DOCUMENT_MAX}`)
      const keep = document || (entry.size <= RETAIN_MAX && retainedBytes + entry.size <= RETAIN_TOTAL)
      const kept: Buffer[] = []
      try {
        let first = true
        for await (const chunk of entry.body) {
          hash.update(chunk)
          if (keep && (document || !first || chunk[0] === 0x7b)) kept.push(Buffer.from(chunk))
          first = false
          if (sink) await sink.write(chunk)
        }
        const actual = 'sha256:' + hash.digest('hex')
        if (actual !== digest) throw integrityError('DIGEST_MISMATCH', `blob ${digest} does not match its content (got ${actual}): the bundle is corrupt`)
        await sink?.commit()
      } catch (err) {
        await sink?.abort()
        throw err
      }
      if (kept.length) {
        const bytes = Buffer.concat(kept)
        retained.set(digest, bytes)
        // (documents have their own limit)
        if (!document) retainedBytes += bytes.length
      }
      seen.set(digest, entry.size)
      offsets.set(digest, entry.offset)
      blobBytes += entry.size
    }

    const imageDigests = new Set(manifest.artifacts.filter((a) => a.kind === 'image').map((a) => a.digest))
    for (const root of roots) {
      if (!imageDigests.has(root.digest)) throw integrityError('UNEXPECTED_ENTRY', `index.json names ${root.digest}, which bundle.json does not list`)
    }
    const base = options.base
    const closure = imageClosure(
      [...roots, ...signatureRoots],
      (d) => retained.get(d) ?? base?.content?.(d),
      (d) => omitted.has(d),
      (d) => seen.has(d) || omitted.has(d),
    )
    for (const [digest, size] of declared) if (!closure.has(digest)) closure.set(digest, size)
    const missing: string[] = []
    for (const [digest, size] of closure) {
      const got = seen.get(digest)
      if (got === undefined) {
        if (omitted.has(digest) && base?.has(digest)) continue
        missing.push(digest)
      } else if (got !== size) {
        throw integrityError('SIZE_MISMATCH', `blob ${digest} is ${got} bytes; its descriptor says ${size}`)
      }
    }
    if (missing.length) {
      const where = manifest.base ? ` (neither in the bundle nor in its base)` : ''
      throw integrityError('MISSING_BLOB', `${missing.length} blob(s) missing${where}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`, {missing})
    }
    for (const digest of seen.keys()) {
      if (!closure.has(digest)) throw integrityError('UNEXPECTED_ENTRY', `blob ${digest} is not referenced by bundle.json or any image`)
    }
    const documentsChecked = checkBundleDocuments(manifest, (d) => retained.get(d) ?? base?.content?.(d))
    options.onProgress?.({phase: 'verify', done: consumed, total: options.totalSize})
    return {manifest, bundleJson, manifestDigest: sha(bundleJson), signers, blobs: seen.size, bytes: consumed, offsets, documentsChecked}
  } finally {
    // a refusal part-way closes the input too: no file is left open behind it
    await entries.return(undefined)
  }
}
