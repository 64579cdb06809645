// VM images published as OCI artifacts (Azure Linux pushes them with oras): the tag names an
// index (maybe multi-platform) or a manifest; its one disk layer is the VM image, named by its
// org.opencontainers.image.title. Notary Project signatures are referrers of that manifest
// (or of the index), checked against the root the manifest names.
import {readFile} from 'node:fs/promises'
import {resolve} from 'node:path'
import {usageError} from '../errors.js'
import type {LockedArtifact, NotationProof, VmOciSource} from '../manifest/lock-format.js'
import type {VmImage} from '../manifest/schema.js'
import {certFingerprint, parseNotationRoot, type NotationTarget} from '../trust/notation.js'
import {parseImageDocument, platformString, selectPlatforms, type Descriptor} from './oci/document.js'
import {verifyNotation} from './oci/notation-check.js'
import {findNotationSignatures, type FoundNotation} from './oci/notation-find.js'
import {formatReference, parseRegistryReference, type RegistryReference} from './oci/reference.js'
import type {RegistryOptions} from './oci/registry-client.js'
import {RegistryPool} from './oci/registry-source.js'

export const TITLE = 'org.opencontainers.image.title'

export interface OciVmOptions {
  manifestDir: string
  platforms: string[]
  registry?: RegistryOptions
  now: Date
}

const descriptor = (d: {mediaType: string; digest: string; size: number}) => ({mediaType: d.mediaType, digest: d.digest, size: d.size})

/** The disk layer: the one named by `file` (title or media type), else the only layer. */
function pickLayer(layers: Descriptor[], file: string | undefined, what: string): Descriptor {
  const named = (l: Descriptor) => `${l.annotations?.[TITLE] ?? '(untitled)'} (${l.mediaType})`
  if (file !== undefined) {
    const hit = layers.filter((l) => l.annotations?.[TITLE] === file || l.mediaType === file)
    if (hit.length === 1) return hit[0]
    throw usageError('VM_LAYER_NOT_FOUND', `${what}: ${hit.length ? 'several layers are' : 'no layer is'} named "${file}"; its layers: ${layers.map(named).join(', ') || 'none'} (set "file" to one title)`)
  }
  if (layers.length === 1) return layers[0]
  throw usageError('VM_LAYER_AMBIGUOUS', `${what}: the artifact has ${layers.length} layers: ${layers.map(named).join(', ') || 'none'}; name the disk with "file: <title>"`)
}

/** The file name the device keeps the image under: the layer's title when it is a plain name. */
function fileName(layer: Descriptor, name: string, what: string): string {
  const title = layer.annotations?.[TITLE]
  if (title === undefined) return name
  if (!/^[A-Za-z0-9._+-]+$/.test(title) || title === '.' || title === '..') throw usageError('VM_BAD_TITLE', `${what}: the layer's title "${title}" is not a plain file name`)
  return title
}

/** Resolves one `oci:` VM entry to a locked artifact: platform, manifest, disk layer, notation signatures. */
export async function resolveOciVm(vm: VmImage, opts: OciVmOptions, pool = new RegistryPool(opts.registry ?? {})): Promise<LockedArtifact> {
  const name = `vm/${vm.name}`
  const ref = parseRegistryReference(vm.oci!)
  const source = pool.source(ref)
  const root = await source.root()
  const top = parseImageDocument(root.bytes, root.mediaType, vm.oci!)
  let index: Descriptor | undefined
  let manifestDoc = root
  let platform: string | undefined
  if (top.kind === 'index') {
    index = {mediaType: top.mediaType, digest: root.digest, size: root.bytes.length}
    const [child] = selectPlatforms(top, [vm.platform ?? opts.platforms[0]], `${name} (${vm.oci})`)
    platform = platformString(child.platform)
    manifestDoc = await source.document(child)
  }
  const doc = parseImageDocument(manifestDoc.bytes, manifestDoc.mediaType, `${vm.oci} manifest`)
  if (doc.kind !== 'manifest') throw usageError('VM_NOT_AN_ARTIFACT', `${name} (${vm.oci}): the index names another index, not an artifact manifest`)
  const manifest = {mediaType: doc.mediaType, digest: manifestDoc.digest, size: manifestDoc.bytes.length}
  const what = `${name} (${formatReference({...ref, digest: manifest.digest})})`
  const layer = pickLayer(doc.layers, vm.file, what)
  const oci: VmOciSource = {
    ref: formatReference(ref),
    ...(index ? {index} : {}),
    manifest,
    config: descriptor(doc.config),
    ...(platform ? {platform} : {}),
    ...(layer.annotations?.[TITLE] ? {title: layer.annotations[TITLE]} : {}),
  }
  const notation = await notationOf(pool, ref, oci, vm, what, opts)
  return {
    name,
    kind: 'vm',
    url: `oci://${formatReference({...ref, digest: manifest.digest})}`,
    sha256: layer.digest.slice('sha256:'.length),
    size: layer.size,
    mediaType: layer.mediaType,
    dest: `vm/${fileName(layer, vm.name, what)}`,
    ...(platform ? {platform} : {}),
    // the tag is the image's version (Azure Linux: 3.0.<YYYYMMDD>), shown by inspect, diff and the changelog
    ...(ref.tag ? {version: ref.tag} : {}),
    upstream: notation?.verified ? {verifiedBy: 'notation', key: notation.verified.fingerprint} : {verifiedBy: 'registry'},
    oci,
    ...(notation ? {notation} : {}),
    ...(vm.delta === 'whole' ? {delta: 'whole' as const} : {}),
  }
}

/** The signatures a VM artifact's manifest (and its index, if any) has as referrers; checked when the entry names a root. */
async function notationOf(pool: RegistryPool, ref: RegistryReference, oci: VmOciSource, vm: VmImage, what: string, opts: OciVmOptions): Promise<NotationProof | undefined> {
  const targets = new Map<string, NotationTarget>([[oci.manifest.digest, oci.manifest]])
  if (oci.index) targets.set(oci.index.digest, oci.index)
  const found: FoundNotation[] = []
  let via = ''
  for (const digest of targets.keys()) {
    const got = await findNotationSignatures(pool, ref, digest)
    if (got.length && !via) via = got[0].via
    found.push(...got)
  }
  let ca: NotationProof['ca']
  let verified: NotationProof['verified']
  if (vm.notation) {
    const file = resolve(opts.manifestDir, vm.notation.ca)
    let pem: string
    try {
      pem = await readFile(file, 'utf8')
    } catch (err) {
      throw usageError('NOTATION_CA_UNREADABLE', `${what}: notation.ca ${vm.notation.ca}: ${(err as Error).message}`)
    }
    const rootCa = parseNotationRoot(pem, vm.notation.ca)
    const result = verifyNotation(what, rootCa, targets, found, opts.now)
    const rootCert = rootCa.certs.find((c) => certFingerprint(c) === result.signer.root.fingerprint)!
    ca = {file: vm.notation.ca, subject: result.signer.root.subject, fingerprint: result.signer.root.fingerprint, pem: rootCert.toString()}
    const s = result.signer
    verified = {signature: result.signature.manifest.digest, subject: s.subject, fingerprint: s.fingerprint, signingTime: s.signingTime}
  }
  if (found.length === 0) return undefined
  return {
    signatures: found.map((f) => ({manifest: {mediaType: f.manifest.mediaType || 'application/vnd.oci.image.manifest.v1+json', digest: f.manifest.digest, size: f.manifest.bytes.length}, envelope: f.envelope.desc, config: f.config.desc, subject: f.subject})),
    via,
    ...(ca ? {ca} : {}),
    ...(verified ? {verified} : {}),
  }
}
