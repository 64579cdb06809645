// VM images published as OCI artifacts and signed with the Notary Project, against a real loopback
// docker-registry (it has no referrers API: signatures are found through the `sha256-<hex>` tag
// index). Certificates come from the openssl CLI, disks from qemu-img, envelopes are JWS as
// notation writes them.
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {FerryError} from '../src/errors.js'
import {describeLock} from '../src/bundle/build.js'
import {checkVmManifests} from '../src/bundle/vm-check.js'
import {parseManifest} from '../src/manifest/load.js'
import {lockManifest, writeLock} from '../src/manifest/lock.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {coseEnvelope, issue, jwsEnvelope, makeDisk, makeRoot, pushArtifact, pushIndex, pushNotation, tagManifest, type Cert, type Target} from './helpers/notation.js'
import {startRegistry, type Registry} from './helpers/registry.js'
import {cyclonedx16} from './helpers/cyclonedx-schema.js'

const ctx = {} as {dir: string; registry: Registry; root: Cert; other: Cert; leaf: Cert; inter: Cert; short: Cert; noEku: Cert; disk: Buffer; vhdx: Buffer; arm: Buffer; good: Target; priv: string; pub: string}
const test = suite('notation')
const QCOW2 = 'application/vnd.ferry.test.disk.qcow2'
const VHDX = 'application/vnd.ferry.test.disk.vhdx'
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function single(repo: string, bytes: Buffer, title = 'minimal-os.qcow2', mediaType = QCOW2): Promise<Target> {
  const h = ctx.registry.host
  const t = await pushArtifact(h, repo, [{bytes, title, mediaType}])
  await tagManifest(h, repo, 'v1', t)
  return t
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-notation-'))
  const d = ctx.dir
  ctx.registry = await startRegistry(join(d, 'registry'))
  const h = ctx.registry.host
  ctx.root = makeRoot(d, 'Test Supply Chain Root')
  ctx.other = makeRoot(d, 'Someone Else Root')
  ctx.inter = issue(d, 'Test Code Signing PCA', ctx.root, {ca: true})
  ctx.leaf = issue(d, 'Azure Linux Image Signing', ctx.inter)
  ctx.short = issue(d, 'Short Lived Signing', ctx.root, {days: 1})
  ctx.noEku = issue(d, 'Server Not Code', ctx.root, {eku: 'serverAuth'})
  const otherLeaf = issue(d, 'Other Signing', ctx.other)
  ctx.disk = makeDisk(join(d, 'amd64.qcow2'), 'qcow2', 1)
  ctx.arm = makeDisk(join(d, 'arm64.qcow2'), 'qcow2', 2)
  ctx.vhdx = makeDisk(join(d, 'amd64.vhdx'), 'vhdx', 3)
  const chain = [ctx.leaf, ctx.inter]
  ctx.good = await single('vm/good', ctx.disk)
  await pushNotation(h, 'vm/good', ctx.good, jwsEnvelope(ctx.leaf, chain, ctx.good))
  const wrong = await single('vm/wrongca', ctx.disk)
  await pushNotation(h, 'vm/wrongca', wrong, jwsEnvelope(otherLeaf, [otherLeaf], wrong))
  const other = await single('vm/otherdigest', ctx.disk)
  await pushNotation(h, 'vm/otherdigest', other, jwsEnvelope(ctx.leaf, chain, other, {claim: sha(Buffer.from('another artifact'))}))
  const tampered = await single('vm/tampered', ctx.disk)
  const env = JSON.parse(jwsEnvelope(ctx.leaf, chain, tampered).toString())
  env.signature = env.signature.slice(0, 60)
  await pushNotation(h, 'vm/tampered', tampered, Buffer.from(JSON.stringify(env)))
  await single('vm/missing', ctx.disk)
  const expired = await single('vm/expired', ctx.disk)
  await pushNotation(h, 'vm/expired', expired, jwsEnvelope(ctx.short, [ctx.short], expired))
  const noEku = await single('vm/noeku', ctx.disk)
  await pushNotation(h, 'vm/noeku', noEku, jwsEnvelope(ctx.noEku, [ctx.noEku], noEku))
  const cty = await single('vm/cty', ctx.disk)
  await pushNotation(h, 'vm/cty', cty, jwsEnvelope(ctx.leaf, chain, cty, {header: {cty: 'application/json'}}))
  const cose = await single('vm/cose', ctx.disk)
  await pushNotation(h, 'vm/cose', cose, coseEnvelope(ctx.leaf, chain, cose), 'application/cose')
  const coseBad = await single('vm/cosebad', ctx.disk)
  const badEnvelope = coseEnvelope(ctx.leaf, chain, coseBad)
  badEnvelope[badEnvelope.indexOf('targetArtifact') + 2] ^= 1
  await pushNotation(h, 'vm/cosebad', coseBad, badEnvelope, 'application/cose')
  const coseOther = await single('vm/coseother', ctx.disk)
  await pushNotation(h, 'vm/coseother', coseOther, coseEnvelope(ctx.leaf, chain, coseOther, {claim: sha(Buffer.from('x'))}), 'application/cose')
  await pushNotation(h, 'vm/cosetrunc', await single('vm/cosetrunc', ctx.disk), coseEnvelope(ctx.leaf, chain, cose).subarray(0, 300), 'application/cose')
  // a multi-platform index: the amd64 manifest signed, the arm64 one signed through the index
  const amd = await pushArtifact(h, 'vm/multi', [{bytes: ctx.disk, title: 'minimal-os-amd64.qcow2', mediaType: QCOW2}])
  const arm = await pushArtifact(h, 'vm/multi', [{bytes: ctx.arm, title: 'minimal-os-arm64.qcow2', mediaType: QCOW2}])
  const index = await pushIndex(h, 'vm/multi', 'v1', [{target: amd, platform: 'linux/amd64'}, {target: arm, platform: 'linux/arm64'}])
  await pushNotation(h, 'vm/multi', amd, jwsEnvelope(ctx.leaf, chain, amd))
  await pushNotation(h, 'vm/multi', index, jwsEnvelope(ctx.leaf, chain, index))
  // two disks in one artifact: picked by title
  const two = await pushArtifact(h, 'vm/two', [{bytes: ctx.disk, title: 'azl.qcow2', mediaType: QCOW2}, {bytes: ctx.vhdx, title: 'azl.vhdx', mediaType: VHDX}])
  await tagManifest(h, 'vm/two', 'v1', two)
  await pushNotation(h, 'vm/two', two, jwsEnvelope(ctx.leaf, chain, two))
  const pair = await writeKeyPair(join(d, 'pgp'), 'release', await generateKeyPair({name: 'test', date: new Date(Date.now() - 60_000)}))
  ctx.priv = pair.private
  ctx.pub = pair.public
})

test.after(async () => {
  await ctx.registry?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

let n = 0
async function manifest(vm: string): Promise<string> {
  const file = join(ctx.dir, `site-${++n}.yaml`)
  await writeFile(file, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: vmsite, version: 1.0.0}\nspec:\n  platforms: [linux/amd64]\n  vm:\n${vm}`)
  return file
}
const entry = (repo: string, extra = ', notation: {ca: Test Supply Chain Root.crt}') => `    - {name: azl, oci: ${ctx.registry.host}/vm/${repo}:v1${extra}}\n`

async function refused(repo: string, opts: {now?: Date; extra?: string} = {}): Promise<FerryError> {
  try {
    await lockManifest(await manifest(entry(repo, opts.extra)), {now: opts.now})
  } catch (err) {
    assert.instance(err, FerryError)
    assert.is((err as FerryError).exit, 4, (err as Error).message)
    assert.not.match((err as Error).message, /\n/)
    assert.match((err as Error).message, /^vm\/azl \(/)
    return err as FerryError
  }
  throw new Error('the lock was made')
}

test('a good signature: the disk layer is pinned by its upstream digest, the manifest and the signer are recorded', async () => {
  const lock = await lockManifest(await manifest(entry('good')))
  const vm = lock.artifacts.find((a) => a.name === 'vm/azl')!
  assert.is(`sha256:${vm.sha256}`, sha(ctx.disk))
  assert.is(vm.size, ctx.disk.length)
  assert.is(vm.mediaType, QCOW2)
  assert.is(vm.dest, 'vm/minimal-os.qcow2')
  assert.is(vm.version, 'v1')
  assert.is(vm.oci?.manifest.digest, ctx.good.digest)
  assert.is(vm.oci?.title, 'minimal-os.qcow2')
  assert.is(vm.upstream.verifiedBy, 'notation')
  assert.match(vm.notation!.verified!.subject, /CN=Azure Linux Image Signing/)
  assert.is(vm.upstream.key, vm.notation!.verified!.fingerprint)
  assert.match(vm.notation!.ca!.subject, /CN=Test Supply Chain Root/)
  assert.is(vm.notation!.signatures.length, 1)
  assert.is(vm.notation!.via, ctx.good.digest.replace(':', '-'))
})

test('another root refuses it: the chain does not lead to the root given', async () => {
  const err = await refused('wrongca')
  assert.is(err.code, 'VM_SIGNATURE_INVALID')
  assert.match(err.message, /does not lead to the root in Test Supply Chain Root\.crt/)
})

test('a payload for another digest is refused', async () => {
  assert.match((await refused('otherdigest')).message, /signed payload is for sha256:[0-9a-f]{64}, not this artifact/)
})

test('a truncated signature is refused', async () => {
  assert.match((await refused('tampered')).message, /does not verify with the leaf certificate's key/)
})

test('no signature at all is refused, naming the tag looked at', async () => {
  const err = await refused('missing')
  assert.is(err.code, 'VM_UNSIGNED')
  assert.match(err.message, /no notation signature/)
})

test('an expired leaf is refused', async () => {
  assert.match((await refused('expired', {now: new Date(Date.now() + 3 * 86400_000)})).message, /leaf certificate \(.*Short Lived Signing.*\) expired at/)
})

test('a leaf without the codeSigning usage, and a protected header with the wrong cty, are refused', async () => {
  assert.match((await refused('noeku')).message, /lacks the extended key usage codeSigning/)
  assert.match((await refused('cty')).message, /cty is "application\/json"/)
})

test('COSE envelopes: a good one verifies; an altered payload, another digest and a truncated one are refused', async () => {
  const lock = await lockManifest(await manifest(entry('cose')))
  assert.is(lock.artifacts[0].upstream.verifiedBy, 'notation')
  assert.match(lock.artifacts[0].notation!.verified!.subject, /CN=Azure Linux Image Signing/)
  assert.match(lock.artifacts[0].notation!.verified!.signingTime, /^\d{4}-\d\d-\d\dT/)
  assert.match((await refused('cosebad')).message, /does not verify with the leaf certificate's key/)
  assert.match((await refused('coseother')).message, /signed payload is for sha256:[0-9a-f]{64}, not this artifact/)
  assert.match((await refused('cosetrunc')).message, /COSE envelope is not CBOR \(truncated CBOR/)
})

test('a multi-platform index: the platform asked for, signed through its manifest or the index', async () => {
  const lock = await lockManifest(await manifest(entry('multi')))
  const amd = lock.artifacts[0]
  assert.is(`sha256:${amd.sha256}`, sha(ctx.disk))
  assert.is(amd.oci?.platform, 'linux/amd64')
  assert.ok(amd.oci?.index)
  assert.is(amd.dest, 'vm/minimal-os-amd64.qcow2')
  const arm = (await lockManifest(await manifest(entry('multi', ', platform: linux/arm64, notation: {ca: Test Supply Chain Root.crt}')))).artifacts[0]
  assert.is(`sha256:${arm.sha256}`, sha(ctx.arm))
  assert.is(arm.platform, 'linux/arm64')
  // the arm64 manifest has no signature of its own: the index's verified
  assert.is(arm.notation!.verified!.signature, arm.notation!.signatures.find((s) => s.subject === arm.oci!.index!.digest)!.manifest.digest)
})

test('several layers: picked by title; without "file" the lock asks for one (exit 2)', async () => {
  const lock = await lockManifest(await manifest(entry('two', ', file: azl.vhdx, notation: {ca: Test Supply Chain Root.crt}')))
  assert.is(`sha256:${lock.artifacts[0].sha256}`, sha(ctx.vhdx))
  assert.is(lock.artifacts[0].mediaType, VHDX)
  try {
    await lockManifest(await manifest(entry('two')))
    assert.unreachable('locked')
  } catch (err) {
    assert.is((err as FerryError).exit, 2)
    assert.match((err as Error).message, /2 layers: azl\.qcow2 \(.*\), azl\.vhdx .*name the disk with "file: <title>"/)
  }
})

test('without notation.ca the signatures are carried but nothing is required', async () => {
  const lock = await lockManifest(await manifest(entry('missing', '')))
  assert.is(lock.artifacts[0].upstream.verifiedBy, 'registry')
  assert.is(lock.artifacts[0].notation, undefined)
})

test('end to end: build carries the disk, manifest and signature; verify passes; inspect shows the signer', async () => {
  const lockFile = join(ctx.dir, 'e2e.lock.json')
  const locked = await ferry(['manifest', 'lock', await manifest(entry('good')), '--out', lockFile, '--json'])
  assert.is(locked.code, 0, locked.stdout + locked.stderr)
  const out = join(ctx.dir, 'out')
  const built = await ferry(['bundle', 'build', lockFile, '--key', ctx.priv, '--out', out, '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(built.code, 0, built.stdout + built.stderr)
  const path = built.json!.result.path as string
  const verified = await ferry(['bundle', 'verify', path, '--key', ctx.pub, '--json'])
  assert.is(verified.code, 0, verified.stdout + verified.stderr)
  const entries = execFileSync('tar', ['-tf', path], {encoding: 'utf8'})
  const lock = JSON.parse(await readFile(lockFile, 'utf8'))
  const vm = lock.artifacts[0]
  for (const d of [`sha256:${vm.sha256}`, vm.oci.manifest.digest, vm.oci.config.digest, vm.notation.signatures[0].manifest.digest, vm.notation.signatures[0].envelope.digest]) {
    assert.ok(entries.includes(`blobs/sha256/${d.slice(7)}`), d)
  }
  const inspected = await ferry(['bundle', 'inspect', path, '--json'])
  const v = inspected.json!.result.vms[0]
  assert.match(v.signedBy.subject, /CN=Azure Linux Image Signing/)
  assert.match(v.signedBy.fingerprint, /^sha256:[0-9a-f]{64}$/)
  assert.is(v.ref, `${ctx.registry.host}/vm/good:v1@${ctx.good.digest}`)
  const text = await ferry(['bundle', 'inspect', path])
  assert.match(text.stdout, /vm\/azl .* signed by .*Azure Linux Image Signing.* \(sha256:/)
  // the SBOM names the VM image with its signer and signature, and stays valid CycloneDX 1.6
  const sbom = JSON.parse((await ferry(['bundle', 'sbom', path])).stdout)
  assert.is(cyclonedx16()(sbom), null)
  const c = sbom.components.find((x: {'bom-ref': string}) => x['bom-ref'] === 'vm/azl')
  assert.is(c.type, 'operating-system')
  const props = Object.fromEntries(c.properties.map((p: {name: string; value: string}) => [p.name, p.value]))
  assert.is(props['ferry:notation:signer'], v.signedBy.fingerprint)
  assert.is(props['ferry:oci:manifest'], ctx.good.digest)
  assert.ok(c.externalReferences.some((r: {type: string; url: string}) => r.type === 'digital-signature' && r.url.endsWith(vm.notation.signatures[0].manifest.digest)))
  // a delta from that bundle: the unchanged disk, manifest and signature are left out, and it verifies against its base
  const delta = await ferry(['bundle', 'build', lockFile, '--key', ctx.priv, '--out', join(ctx.dir, 'delta'), '--store', join(ctx.dir, 'store'), '--since', path, '--json'])
  assert.is(delta.code, 0, delta.stdout + delta.stderr)
  const deltaEntries = execFileSync('tar', ['-tf', delta.json!.result.path], {encoding: 'utf8'})
  assert.not.ok(deltaEntries.includes(vm.notation.signatures[0].envelope.digest.slice(7)))
  assert.not.ok(deltaEntries.includes(vm.sha256))
  const dv = await ferry(['bundle', 'verify', delta.json!.result.path, '--key', ctx.pub, '--base', path, '--json'])
  assert.is(dv.code, 0, dv.stdout + dv.stderr)
  // A lock whose root is not the signer's: the build checks again and refuses (exit 4).
  vm.notation.ca.pem = ctx.other.pem
  await writeLock(lock, join(ctx.dir, 'edited.lock.json'))
  const again = await ferry(['bundle', 'build', join(ctx.dir, 'edited.lock.json'), '--key', ctx.priv, '--out', join(ctx.dir, 'out2'), '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(again.code, 4, again.stdout + again.stderr)
  assert.match(again.json!.error!.message, /^vm\/azl \(.*does not lead to the root/)
})

test('bundle verify refuses an artifact manifest that does not name the VM blob, and a signature of another artifact', async () => {
  const lock = await lockManifest(await manifest(entry('good')))
  const {manifest: described} = describeLock(lock)
  const vm = described.artifacts[0]
  const docs = new Map<string, Buffer>()
  const fetchDoc = async (d: string) => Buffer.from(await (await fetch(`http://${ctx.registry.host}/v2/vm/good/manifests/${d}`, {headers: {Accept: 'application/vnd.oci.image.manifest.v1+json'}})).arrayBuffer())
  docs.set(vm.oci!.manifest.digest, await fetchDoc(vm.oci!.manifest.digest))
  docs.set(vm.notation!.signatures[0].manifest.digest, await fetchDoc(vm.notation!.signatures[0].manifest.digest))
  checkVmManifests(described, (d) => docs.get(d))
  const otherDisk = {...described, artifacts: [{...vm, digest: sha(ctx.vhdx), size: ctx.vhdx.length}]}
  assert.throws(() => checkVmManifests(otherDisk, (d) => docs.get(d)), (e: FerryError) => e.exit === 3 && e.code === 'VM_LAYER_MISMATCH')
  const sig = JSON.parse(docs.get(vm.notation!.signatures[0].manifest.digest)!.toString())
  sig.subject.digest = sha(Buffer.from('another'))
  docs.set(vm.notation!.signatures[0].manifest.digest, Buffer.from(JSON.stringify(sig)))
  assert.throws(() => checkVmManifests(described, (d) => docs.get(d)), (e: FerryError) => e.exit === 3 && e.code === 'VM_SIGNATURE_MISMATCH')
})

test('the manifest takes exactly one of url and oci, and keeps each one\'s fields to it (exit 2, naming the field)', () => {
  const spec = (vm: string) => `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: m, version: 1.0.0}\nspec:\n  vm:\n    - ${vm}\n`
  assert.ok(parseManifest(spec('{name: a, oci: "r.example/x/y:1", platform: linux/arm64, file: a.vhdx, notation: {ca: root.pem}}'), 'm.yaml').spec.vm[0].oci)
  for (const [vm, field] of [
    ['{name: a, oci: "r.example/x/y:1", url: "https://e.example/a.vhdx", sha256: "' + 'a'.repeat(64) + '"}', /url/],
    ['{name: a, oci: "r.example/x/y:1", sha256: "' + 'a'.repeat(64) + '"}', /sha256/],
    ['{name: a, url: "https://e.example/a.vhdx", sha256: "' + 'a'.repeat(64) + '", notation: {ca: r.pem}}', /notation/],
    ['{name: a, oci: "r.example/x/y:1", notation: {}}', /notation/],
  ] as const) {
    try {
      parseManifest(spec(vm), 'm.yaml')
      assert.unreachable(vm)
    } catch (err) {
      assert.is((err as FerryError).exit, 2, vm)
      assert.match((err as Error).message, field)
    }
  }
})

test.run()
