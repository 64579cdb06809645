// Notary Project signatures made the way notation writes them: a root CA and a code-signing leaf
// from the openssl CLI, a JWS envelope (JSON serialization; PS256 over protected.payload, the
// chain in header.x5c), pushed as a referrer of the artifact (a manifest with `subject`, artifact
// type application/vnd.cncf.notary.signature) and listed in the `sha256-<hex>` tag index, the
// OCI 1.1 fallback a registry without the referrers API needs. VM images are pushed as oras
// pushes them: one layer per file, titled, under an empty config, maybe in a multi-platform index.
import {execFileSync} from 'node:child_process'
import {constants, createHash, createPrivateKey, sign, X509Certificate} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {pushBlob, pushManifest} from './cosign.js'

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const EMPTY = 'application/vnd.oci.empty.v1+json'
export const NOTARY = 'application/vnd.cncf.notary.signature'
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

export interface Cert {
  crt: string
  key: string
  pem: string
  der: Buffer
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, {stdio: ['ignore', 'ignore', 'pipe']})
}

function load(crt: string, key: string): Cert {
  const pem = readFileSync(crt, 'utf8')
  return {crt, key, pem, der: new X509Certificate(pem).raw}
}

/** A self-signed root CA (RSA 2048, CA:TRUE, keyCertSign). */
export function makeRoot(dir: string, name: string): Cert {
  const [crt, key] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)]
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-subj', `/CN=${name}/O=Ferry Test`, '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  return load(crt, key)
}

/** A certificate issued by `issuer`: a code-signing leaf, or an intermediate CA. */
export function issue(dir: string, name: string, issuer: Cert, opts: {days?: number; ca?: boolean; eku?: string} = {}): Cert {
  const [crt, key, csr, ext] = ['crt', 'key', 'csr', 'ext'].map((e) => join(dir, `${name}.${e}`))
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}/O=Ferry Test`])
  writeFileSync(
    ext,
    opts.ca
      ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
      : `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${opts.eku ?? 'codeSigning'}\n`,
  )
  openssl(['x509', '-req', '-in', csr, '-CA', issuer.crt, '-CAkey', issuer.key, '-CAcreateserial', '-days', String(opts.days ?? 10), '-extfile', ext, '-out', crt])
  return load(crt, key)
}

export interface Target {
  mediaType: string
  digest: string
  size: number
}

export interface JwsOptions {
  /** the digest the payload names instead of the target's */
  claim?: string
  /** extra protected header fields, or fields to drop (undefined) */
  header?: Record<string, unknown>
}

/** A notation JWS envelope over `target`, signed by `leaf` with its chain (leaf first). */
export function jwsEnvelope(leaf: Cert, chain: Cert[], target: Target, opts: JwsOptions = {}): Buffer {
  const header: Record<string, unknown> = {
    alg: 'PS256',
    crit: ['io.cncf.notary.signingScheme'],
    cty: 'application/vnd.cncf.notary.payload.v1+json',
    'io.cncf.notary.signingScheme': 'notary.x509',
    'io.cncf.notary.signingTime': new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    ...opts.header,
  }
  for (const k of Object.keys(header)) if (header[k] === undefined) delete header[k]
  const payload = {targetArtifact: {mediaType: target.mediaType, digest: opts.claim ?? target.digest, size: target.size}}
  const p = Buffer.from(JSON.stringify(header)).toString('base64url')
  const b = Buffer.from(JSON.stringify(payload)).toString('base64url')
  const key = createPrivateKey(readFileSync(leaf.key))
  const signature = sign('sha256', Buffer.from(`${p}.${b}`), {key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32})
  return Buffer.from(
    JSON.stringify({payload: b, protected: p, header: {x5c: chain.map((c) => c.der.toString('base64')), 'io.cncf.notary.signingAgent': 'notation-go/1.3.0'}, signature: signature.toString('base64url')}),
  )
}

/** Pushes `envelope` as a notation signature referrer of `subject` and lists it in the `sha256-<hex>` tag index. */
export async function pushNotation(host: string, repo: string, subject: Target, envelope: Buffer, mediaType = 'application/jose+json'): Promise<string> {
  const layer = await pushBlob(host, repo, envelope)
  const empty = await pushBlob(host, repo, Buffer.from('{}'))
  const annotations = {'io.cncf.notary.x509chain.thumbprint#S256': '["0"]', 'org.opencontainers.image.created': '2026-12-01T00:00:00Z'}
  const manifest = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: NOTARY, config: {mediaType: EMPTY, ...empty}, layers: [{mediaType, ...layer}], subject, annotations}))
  const digest = await pushManifest(host, repo, sha(manifest), manifest, OCI_MANIFEST)
  const tag = subject.digest.replace(':', '-')
  const existing = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {headers: {Accept: OCI_INDEX}})
  const manifests = existing.ok ? ((await existing.json()) as {manifests: unknown[]}).manifests : []
  const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...manifests, {mediaType: OCI_MANIFEST, digest, size: manifest.length, artifactType: NOTARY, annotations}]}))
  await pushManifest(host, repo, tag, index, OCI_INDEX)
  return digest
}

/** A small disk image made by qemu-img (qcow2 or vhdx), with some data written into it. */
export function makeDisk(file: string, format: 'qcow2' | 'vhdx', seed: number): Buffer {
  const raw = `${file}.raw`
  const data = Buffer.alloc(1 << 20)
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761 + seed * 97) >>> 0, i)
  writeFileSync(raw, Buffer.concat([data, Buffer.alloc(3 << 20)]))
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', format, raw, file])
  return readFileSync(file)
}

export interface DiskLayer {
  bytes: Buffer
  title: string
  mediaType: string
}

/** An artifact manifest the way oras pushes files: an empty config, one titled layer per file. */
export async function pushArtifact(host: string, repo: string, layers: DiskLayer[], artifactType = 'application/vnd.ferry.test.vm-image'): Promise<Target> {
  const empty = await pushBlob(host, repo, Buffer.from('{}'))
  const descs = []
  for (const l of layers) descs.push({mediaType: l.mediaType, ...(await pushBlob(host, repo, l.bytes)), annotations: {'org.opencontainers.image.title': l.title}})
  const manifest = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType, config: {mediaType: EMPTY, ...empty}, layers: descs, annotations: {'org.opencontainers.image.created': '2026-12-01T00:00:00Z'}}))
  const digest = await pushManifest(host, repo, sha(manifest), manifest, OCI_MANIFEST)
  return {mediaType: OCI_MANIFEST, digest, size: manifest.length}
}

/** An index over per-platform artifact manifests, tagged. */
export async function pushIndex(host: string, repo: string, tag: string, children: Array<{target: Target; platform: string}>): Promise<Target> {
  const manifests = children.map(({target, platform}) => {
    const [os, architecture] = platform.split('/')
    return {...target, platform: {os, architecture}}
  })
  const index = Buffer.from(JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests}))
  const digest = await pushManifest(host, repo, tag, index, OCI_INDEX)
  return {mediaType: OCI_INDEX, digest, size: index.length}
}

/** Tags an artifact manifest already pushed. */
export async function tagManifest(host: string, repo: string, tag: string, target: Target): Promise<void> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${target.digest}`, {headers: {Accept: OCI_MANIFEST}})
  await pushManifest(host, repo, tag, Buffer.from(await res.arrayBuffer()), OCI_MANIFEST)
}

type Cbor = number | string | Buffer | Cbor[] | Map<Cbor, Cbor> | {tag: number; value: Cbor}

/** A CBOR encoder for test envelopes (definite lengths, as notation's go-cose writes them). */
export function cbor(v: Cbor): Buffer {
  const head = (major: number, n: number) => {
    if (n < 24) return Buffer.from([(major << 5) | n])
    if (n < 0x100) return Buffer.from([(major << 5) | 24, n])
    if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff])
    const b = Buffer.alloc(5)
    b[0] = (major << 5) | 26
    b.writeUInt32BE(n, 1)
    return b
  }
  if (typeof v === 'number') return v >= 0 ? head(0, v) : head(1, -1 - v)
  if (typeof v === 'string') return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)])
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v])
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cbor)])
  if (v instanceof Map) return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x)])])
  return Buffer.concat([head(6, v.tag), cbor(v.value)])
}

/** A notation COSE_Sign1 envelope over `target` (PS256, x5chain in the unprotected header). */
export function coseEnvelope(leaf: Cert, chain: Cert[], target: Target, opts: {claim?: string} = {}): Buffer {
  const protectedMap = new Map<Cbor, Cbor>([
    [1, -37],
    [2, ['io.cncf.notary.signingScheme']],
    [3, 'application/vnd.cncf.notary.payload.v1+json'],
    ['io.cncf.notary.signingScheme', 'notary.x509'],
    ['io.cncf.notary.signingTime', {tag: 1, value: Math.floor(Date.now() / 1000)}],
  ])
  const prot = cbor(protectedMap)
  const payload = Buffer.from(JSON.stringify({targetArtifact: {mediaType: target.mediaType, digest: opts.claim ?? target.digest, size: target.size}}))
  const toSign = cbor(['Signature1', prot, Buffer.alloc(0), payload])
  const signature = sign('sha256', toSign, {key: createPrivateKey(readFileSync(leaf.key)), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32})
  const unprotected = new Map<Cbor, Cbor>([[33, chain.map((c) => c.der)], ['io.cncf.notary.signingAgent', 'notation-go/1.3.0']])
  return cbor({tag: 18, value: [prot, unprotected, payload, signature]})
}
