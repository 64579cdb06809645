// Cosign signatures made the way cosign writes them, with node:crypto, pushed to a loopback
// registry through its HTTP API: the 1.x/2.x `sha256-<hex>.sig` tag (simple-signing payloads,
// signature in a layer annotation) and the 3.x referrer holding a sigstore bundle (DSSE over an
// in-toto statement), listed in the `sha256-<hex>` fallback tag index.
import {createHash, generateKeyPairSync, sign, type KeyObject} from 'node:crypto'
import {writeFile} from 'node:fs/promises'

export interface TestKey {
  privateKey: KeyObject
  publicPem: string
  /** sha256:<hex> of the DER public key */
  fingerprint: string
}

export function makeKey(type: 'ec' | 'ed25519' | 'rsa' = 'ec'): TestKey {
  const pair =
    type === 'ec' ? generateKeyPairSync('ec', {namedCurve: 'P-256'}) : type === 'rsa' ? generateKeyPairSync('rsa', {modulusLength: 2048}) : generateKeyPairSync('ed25519')
  const der = pair.publicKey.export({type: 'spki', format: 'der'})
  return {privateKey: pair.privateKey, publicPem: pair.publicKey.export({type: 'spki', format: 'pem'}).toString(), fingerprint: `sha256:${createHash('sha256').update(der).digest('hex')}`}
}

export async function writePublicKey(key: TestKey, file: string): Promise<string> {
  await writeFile(file, key.publicPem)
  return file
}

/** What cosign's signer does per key type: ECDSA with SHA-256 (DER), Ed25519 pure, RSA PKCS#1 v1.5 SHA-256. */
export function signBytes(key: TestKey, data: Buffer): Buffer {
  return key.privateKey.asymmetricKeyType === 'ed25519' ? sign(null, data, key.privateKey) : sign('sha256', data, key.privateKey)
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json'

export async function pushBlob(host: string, repo: string, bytes: Buffer): Promise<{digest: string; size: number}> {
  const digest = sha(bytes)
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, {method: 'POST'})
  if (start.status !== 202) throw new Error(`upload start ${start.status}`)
  const url = new URL(start.headers.get('location')!, `http://${host}`)
  url.searchParams.set('digest', digest)
  const put = await fetch(url, {method: 'PUT', body: bytes, headers: {'Content-Type': 'application/octet-stream'}})
  if (put.status !== 201) throw new Error(`blob put ${put.status}: ${await put.text()}`)
  return {digest, size: bytes.length}
}

export async function pushManifest(host: string, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${reference}`, {method: 'PUT', body: bytes, headers: {'Content-Type': mediaType}})
  if (res.status !== 201) throw new Error(`manifest put ${res.status}: ${await res.text()}`)
  return sha(bytes)
}

export interface SimpleSigningOptions {
  /** the digest the payload names (default: the image's) */
  claim?: string
  /** cut the signature to this many bytes */
  truncate?: number
}

/** The simple-signing payload cosign 1.x/2.x signs, byte for byte as it writes it. */
export function simpleSigningPayload(reference: string, digest: string): Buffer {
  return Buffer.from(`{"critical":{"identity":{"docker-reference":"${reference}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`)
}

/** cosign 1.x/2.x: a manifest under `sha256-<hex>.sig` whose layer is the payload, its signature an annotation. */
export async function pushSigTag(host: string, repo: string, digest: string, key: TestKey, opts: SimpleSigningOptions = {}): Promise<string> {
  const payload = simpleSigningPayload(`${host}/${repo}`, opts.claim ?? digest)
  let signature = signBytes(key, payload)
  if (opts.truncate !== undefined) signature = signature.subarray(0, opts.truncate)
  const layer = await pushBlob(host, repo, payload)
  const config = Buffer.from(JSON.stringify({architecture: '', created: '0001-01-01T00:00:00Z', history: [{created: '0001-01-01T00:00:00Z'}], os: '', rootfs: {type: 'layers', diff_ids: [layer.digest]}, config: {}}))
  const cfg = await pushBlob(host, repo, config)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg},
      layers: [{mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...layer, annotations: {'dev.cosignproject.cosign/signature': signature.toString('base64')}}],
    }),
  )
  return pushManifest(host, repo, `${digest.replace(':', '-')}.sig`, manifest, OCI_MANIFEST)
}

/** DSSE's pre-authentication encoding. */
export function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload])
}

/**
 * cosign 3.x: a referrer of the image (manifest with `subject`) whose single layer is a sigstore
 * bundle, and the `sha256-<hex>` tag index listing it (the referrers fallback). `subject` names
 * another digest in the statement when given.
 */
export async function pushBundleReferrer(host: string, repo: string, image: {digest: string; size: number; mediaType: string}, key: TestKey, opts: {subject?: string} = {}): Promise<string> {
  const statement = Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{name: `${host}/${repo}`, digest: {sha256: (opts.subject ?? image.digest).slice('sha256:'.length)}}],
      predicateType: 'https://sigstore.dev/cosign/sign/v1',
      predicate: {},
    }),
  )
  const type = 'application/vnd.in-toto+json'
  const bundle = Buffer.from(
    JSON.stringify({
      mediaType: BUNDLE_TYPE,
      verificationMaterial: {publicKey: {hint: key.fingerprint}, tlogEntries: []},
      dsseEnvelope: {payload: statement.toString('base64'), payloadType: type, signatures: [{sig: signBytes(key, pae(type, statement)).toString('base64'), keyid: ''}]},
    }),
  )
  const layer = await pushBlob(host, repo, bundle)
  const empty = await pushBlob(host, repo, Buffer.from('{}'))
  const annotations = {'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1'}
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: BUNDLE_TYPE,
      config: {mediaType: 'application/vnd.oci.empty.v1+json', ...empty},
      layers: [{mediaType: BUNDLE_TYPE, ...layer}],
      subject: image,
      annotations,
    }),
  )
  const digest = await pushManifest(host, repo, sha(manifest), manifest, OCI_MANIFEST)
  const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{mediaType: OCI_MANIFEST, digest, size: manifest.length, artifactType: BUNDLE_TYPE, annotations}]}))
  await pushManifest(host, repo, image.digest.replace(':', '-'), index, OCI_INDEX)
  return digest
}

/** The digest, size and media type of what a tag names in a registry. */
export async function headManifest(host: string, repo: string, reference: string): Promise<{digest: string; size: number; mediaType: string}> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${reference}`, {headers: {Accept: [OCI_INDEX, OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ')}})
  if (!res.ok) throw new Error(`manifest ${repo}:${reference}: ${res.status}`)
  const bytes = Buffer.from(await res.arrayBuffer())
  return {digest: sha(bytes), size: bytes.length, mediaType: (res.headers.get('content-type') ?? '').split(';')[0]}
}
