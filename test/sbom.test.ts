// The CycloneDX SBOM every bundle carries: built from a real loopback upstream and registry,
// checked against the official CycloneDX 1.6 schema, against what the bundle ships (every
// artifact and image blob with its digest, the keys that verified them), reproducible, covered
// by the signature, and refused by bundle verify when tampered with.
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Spec, Validation} from '@cyclonedx/cyclonedx-library'
import {armorSignatures, fileSigner} from '../src/trust/sign.js'
import {makeAttestFixture, tarEntry, type AttestFixture} from './helpers/attest-fixture.js'
import {ferry} from './helpers/cli.js'
import {cyclonedx16} from './helpers/cyclonedx-schema.js'
import {readEntries, writeEntries} from './helpers/tar-craft.js'

const test = suite('sbom')
const ctx = {} as {fx: AttestFixture; bundleJson: any; sbomBytes: Buffer; sbom: any}
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const SBOM = 'ferry/sbom.cdx.json'

test.before(async () => {
  ctx.fx = await makeAttestFixture('ferry-sbom-')
  ctx.bundleJson = JSON.parse(tarEntry(ctx.fx.built.path, 'bundle.json').toString('utf8'))
  const entry = ctx.bundleJson.artifacts.find((a: any) => a.name === SBOM)
  ctx.sbomBytes = tarEntry(ctx.fx.built.path, `blobs/sha256/${entry.digest.slice(7)}`)
  ctx.sbom = JSON.parse(ctx.sbomBytes.toString('utf8'))
})

test.after(async () => {
  await ctx.fx?.close()
})

test('the SBOM is an artifact of bundle.json: its bytes hash to the digest the signature covers', async () => {
  const entry = ctx.bundleJson.artifacts.find((a: any) => a.name === SBOM)
  assert.equal({kind: entry.kind, mediaType: entry.mediaType, source: entry.source, size: entry.size}, {kind: 'file', mediaType: 'application/vnd.cyclonedx+json', source: 'ferry:generated', size: ctx.sbomBytes.length})
  assert.is(sha(ctx.sbomBytes), entry.digest)
  const v = await ferry(['bundle', 'verify', ctx.fx.built.path, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 0, v.stdout + v.stderr)
  assert.equal(v.json?.result.documents, [SBOM, 'ferry/provenance.intoto.json'])
})

test('it validates against the official CycloneDX 1.6 JSON schema (ajv) and the CycloneDX library', async () => {
  const errors = cyclonedx16()(ctx.sbom)
  assert.is(errors, null, JSON.stringify(errors?.slice(0, 5)))
  const strict = new Validation.JsonStrictValidator(Spec.Version.v1dot6)
  assert.is(await strict.validate(ctx.sbomBytes.toString('utf8')), null)
  // the schema check has teeth: a component without a type is refused
  const broken = structuredClone(ctx.sbom)
  delete broken.components[0].type
  assert.ok(cyclonedx16()(broken))
  assert.ok(await strict.validate(JSON.stringify(broken)))
})

test('every artifact is one component, with its sha256, version, source and type', async () => {
  const shipped = ctx.bundleJson.artifacts.filter((a: any) => a.source !== 'ferry:generated')
  assert.is(ctx.sbom.components.length, shipped.length)
  const byRef = new Map(ctx.sbom.components.map((c: any) => [c['bom-ref'], c]))
  const types: Record<string, string> = {}
  for (const a of shipped) {
    const c: any = byRef.get(a.name)
    assert.ok(c, a.name)
    assert.equal(c.hashes, [{alg: 'SHA-256', content: a.digest.slice(7)}], a.name)
    if (a.kind === 'image' || !/^https?:/.test(a.source)) assert.ok(c.properties.some((p: any) => p.name === 'ferry:source' && p.value === a.source), a.name)
    else assert.ok(c.externalReferences.some((r: any) => r.type === 'distribution' && r.url === a.source), a.name)
    if (a.version && a.kind !== 'image') assert.is(c.version, a.version, a.name)
    types[a.name] = c.type
  }
  assert.is(types['vm/azurelinux'], 'operating-system')
  assert.is(types['k3s/k3s-amd64'], 'application')
  assert.is(types['k3s/k3s-airgap-images-amd64.tar.zst'], 'file')
  assert.is(types['kubernetes/kubectl-amd64'], 'application')
  assert.ok(shipped.some((a: any) => a.kind === 'file' && types[a.name] === 'file'))
  assert.equal(ctx.sbom.metadata.component.name, 'attest-site')
  assert.equal(ctx.sbom.metadata.component.version, '2.1.0')
  assert.is(ctx.sbom.metadata.timestamp, ctx.fx.lock.resolved)
  assert.equal(ctx.sbom.dependencies[0], {ref: 'bundle', dependsOn: shipped.map((a: any) => a.name)})
})

test('images: pkg:oci purl with digest, repository_url and tag; platform manifests, configs and layers are every image blob the bundle carries', async () => {
  const images = ctx.bundleJson.artifacts.filter((a: any) => a.kind === 'image')
  const host = ctx.fx.registry.host
  const blobs = new Set(execTarBlobs(ctx.fx.built.path))
  const listed = new Set<string>()
  for (const a of images) {
    const c = ctx.sbom.components.find((x: any) => x['bom-ref'] === a.name)
    assert.is(c.type, 'container')
    const repo = a.ref.split(':').slice(0, -1).join(':')
    const name = repo.split('/').pop()
    const tag = a.ref.split(':').pop()
    assert.ok(c.purl.startsWith(`pkg:oci/${name}@sha256%3A${a.digest.slice(7)}?`), c.purl)
    assert.match(c.purl, `repository_url=${repo}`)
    assert.match(c.purl, `tag=${tag}`)
    assert.ok(repo.startsWith(host))
    const walk = (x: any) => {
      for (const h of x.hashes ?? []) listed.add(`sha256:${h.content}`)
      for (const child of x.components ?? []) walk(child)
    }
    walk(c)
  }
  const multi = ctx.sbom.components.find((x: any) => x.name.endsWith('/app/multi'))
  assert.is(multi.components.length, 1, 'only the amd64 child of the index is carried')
  assert.is(multi.components[0].properties.find((p: any) => p.name === 'ferry:platform').value, 'linux/amd64')
  assert.match(multi.components[0].purl, 'arch=amd64')
  assert.ok(multi.components[0].components.some((l: any) => l.properties.some((p: any) => p.value === 'layer')))
  // every blob of the bundle but the files, chunk indexes and the documents is an image blob: each is listed
  const notImage = new Set(ctx.bundleJson.artifacts.filter((a: any) => a.kind !== 'image').flatMap((a: any) => [a.digest, ...(a.chunks ? [a.chunks.index] : [])]))
  const signatureBlobs = images.filter((a: any) => a.cosign).length
  const imageBlobs = [...blobs].filter((d) => !notImage.has(d))
  const missing = imageBlobs.filter((d) => !listed.has(d))
  // the cosign signature manifest is listed; its own config and payload are not
  assert.ok(missing.length <= signatureBlobs * 2, `unlisted: ${missing.join(', ')}`)
  for (const d of listed) assert.ok(blobs.has(d), `listed but not carried: ${d}`)
})

test('the signatures that were checked: the cosign key fingerprint and the PGP key of the checksum list', async () => {
  const api = ctx.sbom.components.find((x: any) => x.name.endsWith('/app/api'))
  const props = Object.fromEntries(api.properties.map((p: any) => [p.name, p.value]))
  assert.is(props['ferry:cosign:key'], ctx.fx.cosign.fingerprint)
  assert.is(props['ferry:upstream:verifiedBy'], 'cosign')
  const signed = ctx.bundleJson.artifacts.find((a: any) => a.cosign)
  assert.is(props['ferry:cosign:signature'], signed.cosign.manifest.digest)
  const vm = ctx.sbom.components.find((x: any) => x['bom-ref'] === 'vm/azurelinux')
  const vmProps = Object.fromEntries(vm.properties.map((p: any) => [p.name, p.value]))
  const art = ctx.bundleJson.artifacts.find((a: any) => a.name === 'vm/azurelinux')
  assert.is(vmProps['ferry:upstream:verifiedBy'], 'checksum-file+pgp')
  assert.is(vmProps['ferry:pgp:key'], art.upstream.key)
  assert.ok(vm.externalReferences.some((r: any) => r.type === 'digital-signature' && r.url === art.upstream.signatureUrl))
})

test('SBOMs the registry holds for an image (OCI referrers, cosign attestations) are pinned by the lock, carried beside the image and linked from it', async () => {
  const host = ctx.fx.registry.host
  const sboms = ctx.fx.imageSboms
  const expected = {api: [[sboms.api, 'cdx.json'], [sboms.attested, 'cdx.att.json'], [sboms.otherKey, 'cdx.att.json']], multi: [[sboms.multi, 'spdx.json']]} as const
  for (const [key, repo, tag] of [['api', 'app/api', '1.4.2'], ['multi', 'app/multi', '2.0']] as const) {
    const image = ctx.fx.lock.artifacts.find((a) => a.ref?.endsWith(`/${repo}:${tag}`))!
    assert.equal(image.sboms?.map((x) => ({document: x.document.digest, manifest: x.manifest.digest})), expected[key].map(([p]) => ({document: p.digest, manifest: p.manifest})), key)
    const c = ctx.sbom.components.find((x: any) => x['bom-ref'] === image.name)
    assert.equal(c.externalReferences.map((r: any) => [r.type, r.url, r.hashes[0].content]), expected[key].map(([p]) => ['bom', `blobs/sha256/${p.digest.slice(7)}`, p.digest.slice(7)]), key)
    for (const [pushed, ext] of expected[key]) {
      const carried = ctx.bundleJson.artifacts.find((a: any) => a.digest === pushed.digest)
      assert.equal({name: carried.name, kind: carried.kind, source: carried.source}, {name: `${image.name}/sbom/${pushed.digest.slice(7, 19)}.${ext}`, kind: 'file', source: `${host}/${repo}@${pushed.manifest}`})
      assert.ok(tarEntry(ctx.fx.built.path, `blobs/sha256/${pushed.digest.slice(7)}`).equals(pushed.bytes))
      const file = ctx.sbom.components.find((x: any) => x['bom-ref'] === carried.name)
      assert.is(file.purl, `pkg:oci/${repo.split('/')[1]}@sha256%3A${pushed.manifest.slice(7)}?repository_url=${host}/${repo}`)
    }
  }
  // the attestation the image's own cosign key signed says so; the other is carried as the registry had it
  const api = ctx.fx.lock.artifacts.find((a) => a.name.endsWith('/app/api:1.4.2'))!
  assert.equal(api.sboms!.map((x) => [x.predicateType, x.key]), [[undefined, undefined], ['https://cyclonedx.org/bom', ctx.fx.cosign.fingerprint], ['https://cyclonedx.org/bom', undefined]])
  const upstream = (d: string) => ctx.bundleJson.artifacts.find((a: any) => a.digest === d).upstream
  assert.equal(upstream(sboms.attested.digest), {verifiedBy: 'cosign', key: ctx.fx.cosign.fingerprint})
  assert.equal(upstream(sboms.otherKey.digest), {verifiedBy: 'registry'})
  const props = (d: string) => ctx.sbom.components.find((x: any) => x.hashes[0].content === d.slice(7)).properties
  assert.ok(props(sboms.attested.digest).some((p: any) => p.name === 'ferry:cosign:key' && p.value === ctx.fx.cosign.fingerprint))
})

test('ferry bundle sbom prints the stored bytes exactly; --out writes them; --json holds the document', async () => {
  const r = await ferry(['bundle', 'sbom', ctx.fx.built.path])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, ctx.sbomBytes.toString('utf8'))
  const out = join(ctx.fx.dir, 'sbom.cdx.json')
  const w = await ferry(['bundle', 'sbom', ctx.fx.built.path, '--out', out, '--key', ctx.fx.pub])
  assert.is(w.code, 0, w.stderr)
  assert.ok((await readFile(out)).equals(ctx.sbomBytes))
  assert.match(w.stdout, 'signed by')
  const j = await ferry(['bundle', 'sbom', ctx.fx.built.path, '--json'])
  assert.is(j.code, 0)
  assert.equal(j.json?.result.document, ctx.sbom)
  assert.is(j.json?.result.digest, sha(ctx.sbomBytes))
  const wrong = await ferry(['bundle', 'sbom', ctx.fx.built.path, '--key', ctx.fx.otherPub, '--json'])
  assert.is(wrong.code, 4, wrong.stdout)
  assert.is(wrong.json?.status, 4)
})

test('bundle sbom reads a bundle written to a stick in parts, the SBOM straddling two of them', async () => {
  const stick = join(ctx.fx.dir, 'stick')
  await mkdir(stick)
  // where the SBOM's bytes start (GNU tar numbers the header blocks): the first part ends in its middle
  const hex = ctx.bundleJson.artifacts.find((a: any) => a.name === SBOM).digest.slice(7)
  const line = execFileSync('tar', ['--block-number', '-tf', ctx.fx.built.path]).toString().split('\n').find((l) => l.endsWith(hex))!
  const start = (Number(/^block (\d+):/.exec(line)![1]) + 1) * 512
  const w = await ferry(['usb', 'write', ctx.fx.built.path, stick, '--part-size', String(start + (ctx.sbomBytes.length >> 1)), '--json'])
  assert.is(w.code, 0, w.stdout + w.stderr)
  assert.ok(w.json?.result.parts.length >= 2)
  const r = await ferry(['bundle', 'sbom', stick])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, ctx.sbomBytes.toString('utf8'))
})

test('reproducible: a second cold build of the lock gives the same SBOM bytes (serial number from the content)', async () => {
  const again = await ctx.fx.build(join(ctx.fx.dir, 'out2'), join(ctx.fx.dir, 'store2'))
  assert.is(again.sha256, ctx.fx.built.sha256)
  const entry = again.manifest.artifacts.find((a) => a.name === SBOM)!
  assert.ok(tarEntry(again.path, `blobs/sha256/${entry.digest.slice(7)}`).equals(ctx.sbomBytes))
  assert.match(ctx.sbom.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
})

test('a changed byte in the SBOM: bundle verify and bundle sbom refuse, exit 3', async () => {
  const entries = await readEntries(ctx.fx.built.path)
  const digest = ctx.bundleJson.artifacts.find((a: any) => a.name === SBOM).digest
  const e = entries.find((x) => x.path === `blobs/sha256/${digest.slice(7)}`)!
  e.data = Buffer.from(e.data.toString('utf8').replace('"CycloneDX"', '"CycloneDY"'))
  const bad = join(ctx.fx.dir, 'tampered.ferry.tar')
  await writeEntries(bad, entries)
  const v = await ferry(['bundle', 'verify', bad, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 3, v.stdout)
  assert.is(v.json?.error.code, 'DIGEST_MISMATCH')
  const s = await ferry(['bundle', 'sbom', bad, '--json'])
  assert.is(s.code, 3, s.stdout)
  assert.is(s.json?.error.code, 'DIGEST_MISMATCH')
})

test('an SBOM that leaves out an artifact, signed anyway: bundle verify refuses it, exit 3 DOCUMENT_MISMATCH', async () => {
  const bad = await resigned(ctx.fx, (sbom) => sbom.components.pop(), join(ctx.fx.dir, 'short.ferry.tar'))
  const v = await ferry(['bundle', 'verify', bad, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 3, v.stdout)
  assert.is(v.json?.error.code, 'DOCUMENT_MISMATCH')
  assert.match(v.json?.error.message, 'ferry/sbom.cdx.json does not describe this bundle')
})

test('a bundle without documents (as older Ferry built) still verifies; bundle sbom says there is none, exit 2', async () => {
  const entries = await readEntries(ctx.fx.built.path)
  const docs = ctx.bundleJson.artifacts.filter((a: any) => a.source === 'ferry:generated').map((a: any) => `blobs/sha256/${a.digest.slice(7)}`)
  const json = {...ctx.bundleJson, artifacts: ctx.bundleJson.artifacts.filter((a: any) => a.source !== 'ferry:generated')}
  const old = join(ctx.fx.dir, 'old.ferry.tar')
  await writeEntries(old, await sign(ctx.fx, entries.filter((e) => !docs.includes(e.path)), json))
  const v = await ferry(['bundle', 'verify', old, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 0, v.stdout)
  const s = await ferry(['bundle', 'sbom', old, '--json'])
  assert.is(s.code, 2, s.stdout)
  assert.is(s.json?.error.code, 'NO_DOCUMENT')
})

test('a lock written back from a bundle.json names its documents: the build makes them anew, once', async () => {
  const fromBundle = {
    ...ctx.fx.lock,
    artifacts: ctx.bundleJson.artifacts.map((a: any) => ({...ctx.fx.lock.artifacts.find((l) => l.name === a.name), name: a.name, kind: a.kind, url: a.source, sha256: a.digest.slice(7), size: a.size, mediaType: a.mediaType, upstream: a.upstream})),
  }
  const built = await ctx.fx.build(join(ctx.fx.dir, 'out-relock'), join(ctx.fx.dir, 'store'), {}, fromBundle)
  const docs = built.manifest.artifacts.filter((a) => a.source === 'ferry:generated').map((a) => a.name)
  assert.equal(docs, [SBOM, 'ferry/provenance.intoto.json'])
  const sbom = built.manifest.artifacts.find((a) => a.name === SBOM)!
  assert.is(sbom.digest, sha(ctx.sbomBytes))
  const v = await ferry(['bundle', 'verify', built.path, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 0, v.stdout)
})

/** The blob digests of a bundle, as GNU tar lists them. */
function execTarBlobs(bundle: string): string[] {
  return execFileSync('tar', ['-tf', bundle]).toString().trim().split('\n').filter((n) => n.startsWith('blobs/')).map((n) => `sha256:${n.slice('blobs/sha256/'.length)}`)
}

/** bundle.json replaced (and signed again with the release key); entries otherwise as given. */
async function sign(fx: AttestFixture, entries: Awaited<ReturnType<typeof readEntries>>, json: unknown) {
  const bytes = Buffer.from(JSON.stringify(json, null, 2) + '\n')
  const signer = await fileSigner(fx.priv)
  const sig = Buffer.from(armorSignatures([await signer.sign(bytes, new Date(fx.lock.resolved))]))
  return entries.map((e) => (e.path === 'bundle.json' ? {...e, data: bytes} : e.path === 'bundle.json.asc' ? {...e, data: sig} : e))
}

/** The bundle with its SBOM edited, bundle.json naming the new digest, signed again. */
async function resigned(fx: AttestFixture, edit: (sbom: any) => void, out: string): Promise<string> {
  const entries = await readEntries(fx.built.path)
  const json = JSON.parse(entries.find((e) => e.path === 'bundle.json')!.data.toString('utf8'))
  const doc = json.artifacts.find((a: any) => a.name === SBOM)
  const old = `blobs/sha256/${doc.digest.slice(7)}`
  const sbom = JSON.parse(entries.find((e) => e.path === old)!.data.toString('utf8'))
  edit(sbom)
  const bytes = Buffer.from(JSON.stringify(sbom, null, 2) + '\n')
  doc.digest = sha(bytes)
  doc.size = bytes.length
  const blobs = entries.filter((e) => e.path.startsWith('blobs/') && e.path !== old)
  blobs.push({path: `blobs/sha256/${doc.digest.slice(7)}`, data: bytes})
  blobs.sort((a, b) => (a.path < b.path ? -1 : 1))
  await writeEntries(out, await sign(fx, [...entries.filter((e) => !e.path.startsWith('blobs/')), ...blobs], json))
  return out
}

test.run()
