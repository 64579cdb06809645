// SLSA provenance v1 (an in-toto Statement v1) every bundle carries: built from a real loopback
// upstream and registry, checked against the two specs' required fields, against the bundle
// (every artifact a subject, every upstream a resolved dependency, the lock by digest),
// reproducible across builds and processes, and refused by bundle verify when tampered with.
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {z} from 'zod'
import {armorSignatures, fileSigner} from '../src/trust/sign.js'
import {makeAttestFixture, tarEntry, type AttestFixture} from './helpers/attest-fixture.js'
import {ferry, REPO} from './helpers/cli.js'
import {readEntries, writeEntries} from './helpers/tar-craft.js'

const test = suite('provenance')
const ctx = {} as {fx: AttestFixture; bundleJson: any; bytes: Buffer; statement: any}
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')
const PROVENANCE = 'ferry/provenance.intoto.json'
const blobOf = (bundle: string, json: any, name: string) => tarEntry(bundle, `blobs/sha256/${json.artifacts.find((a: any) => a.name === name).digest.slice(7)}`)

// in-toto Statement v1 and SLSA provenance v1, their required fields as the specs state them
const DigestSet = z.record(z.string(), z.string().regex(/^[0-9a-f]+$/)).refine((d) => Object.keys(d).length > 0)
const ResourceDescriptor = z
  .object({uri: z.string().optional(), digest: DigestSet.optional(), name: z.string().optional(), mediaType: z.string().optional(), annotations: z.record(z.string(), z.unknown()).optional()})
  .refine((r) => r.uri !== undefined || r.digest !== undefined, 'a resource descriptor needs uri, digest or content')
const Statement = z.object({
  _type: z.literal('https://in-toto.io/Statement/v1'),
  subject: z.array(z.object({name: z.string().min(1), digest: DigestSet})).min(1),
  predicateType: z.literal('https://slsa.dev/provenance/v1'),
  predicate: z.object({
    buildDefinition: z.object({
      buildType: z.string().url(),
      externalParameters: z.record(z.string(), z.unknown()),
      internalParameters: z.record(z.string(), z.unknown()).optional(),
      resolvedDependencies: z.array(ResourceDescriptor).optional(),
    }),
    runDetails: z.object({builder: z.object({id: z.string().url(), version: z.record(z.string(), z.string()).optional()}), metadata: z.object({}).passthrough().optional()}),
  }),
})

test.before(async () => {
  ctx.fx = await makeAttestFixture('ferry-provenance-')
  ctx.bundleJson = JSON.parse(tarEntry(ctx.fx.built.path, 'bundle.json').toString('utf8'))
  ctx.bytes = blobOf(ctx.fx.built.path, ctx.bundleJson, PROVENANCE)
  ctx.statement = JSON.parse(ctx.bytes.toString('utf8'))
})

test.after(async () => {
  await ctx.fx?.close()
})

test('the provenance is an artifact of bundle.json (signed), an in-toto Statement v1 with an SLSA provenance v1 predicate', async () => {
  const entry = ctx.bundleJson.artifacts.find((a: any) => a.name === PROVENANCE)
  assert.equal({kind: entry.kind, mediaType: entry.mediaType, size: entry.size, digest: entry.digest}, {kind: 'file', mediaType: 'application/vnd.in-toto+json', size: ctx.bytes.length, digest: `sha256:${sha(ctx.bytes)}`})
  const parsed = Statement.safeParse(ctx.statement)
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues))
  // the check has teeth
  assert.not.ok(Statement.safeParse({...ctx.statement, subject: []}).success)
})

test('subjects: every artifact of the bundle and the SBOM, by name and sha256', async () => {
  const expected = ctx.bundleJson.artifacts.filter((a: any) => a.name !== PROVENANCE).map((a: any) => ({name: a.name, digest: {sha256: a.digest.slice(7)}}))
  assert.equal(ctx.statement.subject, expected)
  const sbom = blobOf(ctx.fx.built.path, ctx.bundleJson, 'ferry/sbom.cdx.json')
  assert.is(ctx.statement.subject.find((s: any) => s.name === 'ferry/sbom.cdx.json').digest.sha256, sha(sbom))
})

test('build definition: Ferry\'s build type, the lock by the digest of its file, the manifest fields it resolved', async () => {
  const def = ctx.statement.predicate.buildDefinition
  assert.is(def.buildType, 'urn:ferry:build-type:bundle:v1')
  assert.is(def.externalParameters.lock.digest.sha256, sha(await readFile(ctx.fx.lockPath)))
  assert.is(def.externalParameters.lock.resolved, ctx.fx.lock.resolved)
  assert.equal(def.externalParameters.manifest, {name: 'attest-site', version: '2.1.0', platforms: ['linux/amd64'], expires: ctx.fx.lock.expires})
})

test('resolved dependencies: every upstream URL and image with its digest, the cosign signature with its key', async () => {
  const deps = ctx.statement.predicate.buildDefinition.resolvedDependencies
  for (const a of ctx.bundleJson.artifacts.filter((x: any) => x.source !== 'ferry:generated')) {
    const d = deps.find((x: any) => x.name === a.name)
    assert.ok(d, a.name)
    assert.equal(d.digest, {sha256: a.digest.slice(7)}, a.name)
    if (a.kind === 'image' || a.name.includes('/sbom/')) {
      // an image by its manifest digest; an image's SBOM by the referrer manifest that holds it
      const named = a.kind === 'image' ? a.digest : a.source.split('@')[1]
      assert.ok(d.uri.startsWith(`pkg:oci/`) && d.uri.includes(`@sha256%3A${named.slice(7)}`), d.uri)
      assert.is(d.annotations.source, a.source)
    } else {
      assert.is(d.uri, a.source)
    }
    assert.is(d.annotations.verifiedBy, a.upstream.verifiedBy)
  }
  const vm = deps.find((x: any) => x.name === 'vm/azurelinux')
  assert.ok(vm.annotations.checksumUrl.endsWith('/SHA256SUMS') && /^[0-9A-F]{40}$/.test(vm.annotations.key), JSON.stringify(vm))
  const signed = ctx.bundleJson.artifacts.find((a: any) => a.cosign)
  const sig = deps.find((x: any) => x.annotations?.kind === 'cosign-signature')
  assert.equal(sig.digest, {sha256: signed.cosign.manifest.digest.slice(7)})
  assert.is(sig.annotations.key, ctx.fx.cosign.fingerprint)
})

test('run details: Ferry as the builder, with its version', async () => {
  const version = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')).version
  assert.equal(ctx.statement.predicate.runDetails, {builder: {id: 'urn:ferry:builder:ferry-cli', version: {ferry: version}}})
})

test('ferry bundle provenance prints the stored bytes exactly; --out and --json', async () => {
  const r = await ferry(['bundle', 'provenance', ctx.fx.built.path])
  assert.is(r.code, 0, r.stderr)
  assert.is(r.stdout, ctx.bytes.toString('utf8'))
  const out = join(ctx.fx.dir, 'prov.json')
  const w = await ferry(['bundle', 'provenance', ctx.fx.built.path, '--out', out, '--key', ctx.fx.pub, '--json'])
  assert.is(w.code, 0, w.stdout)
  assert.ok((await readFile(out)).equals(ctx.bytes))
  assert.equal(w.json?.result.document, ctx.statement)
  assert.is(w.json?.result.verifiedBy.length, 1)
})

test('reproducible: a cold rebuild in this process and a CLI build from the lock file give the same bytes', async () => {
  const again = await ctx.fx.build(join(ctx.fx.dir, 'out2'), join(ctx.fx.dir, 'store2'))
  assert.is(again.sha256, ctx.fx.built.sha256)
  const cli = await ferry(['bundle', 'build', ctx.fx.lockPath, '--key', ctx.fx.priv, '--out', join(ctx.fx.dir, 'out3'), '--store', join(ctx.fx.dir, 'store3'), '--json'])
  assert.is(cli.code, 0, cli.stdout + cli.stderr)
  assert.is(cli.json?.result.sha256, ctx.fx.built.sha256)
  assert.equal(Object.keys(cli.json?.result.documents).sort(), ['provenance', 'sbom'])
})

test('a delta of the same lock carries the same documents: left to its base, found there by verify --base; --since LOCK names the same base', async () => {
  const delta = await ctx.fx.build(join(ctx.fx.dir, 'delta'), join(ctx.fx.dir, 'store'), {since: await loadSince(ctx.fx.built.path)})
  const dj = JSON.parse(tarEntry(delta.path, 'bundle.json').toString('utf8'))
  const doc = dj.artifacts.find((a: any) => a.name === PROVENANCE)
  assert.is(doc.digest, `sha256:${sha(ctx.bytes)}`)
  assert.ok(dj.omitted.includes(doc.digest))
  const p = await ferry(['bundle', 'provenance', delta.path, '--json'])
  assert.is(p.code, 2, p.stdout)
  assert.is(p.json?.error.code, 'DOCUMENT_IN_BASE')
  const v = await ferry(['bundle', 'verify', delta.path, '--key', ctx.fx.pub, '--base', ctx.fx.built.path, '--json'])
  assert.is(v.code, 0, v.stdout + v.stderr)
  // the base rebuilt from its lock (its documents made again, image documents read from the store)
  // is named by the same bundle.json digest as the base bundle itself
  const fromLock = await ferry(['bundle', 'build', ctx.fx.lockPath, '--key', ctx.fx.priv, '--since', ctx.fx.lockPath, '--out', join(ctx.fx.dir, 'delta-lock'), '--store', join(ctx.fx.dir, 'store'), '--json'])
  assert.is(fromLock.code, 0, fromLock.stdout + fromLock.stderr)
  assert.equal(fromLock.json?.result.base, dj.base)
  assert.is(dj.base.digest, `sha256:${sha(tarEntry(ctx.fx.built.path, 'bundle.json'))}`)
})

test('a changed byte in the provenance: bundle verify and bundle provenance refuse, exit 3', async () => {
  const entries = await readEntries(ctx.fx.built.path)
  const e = entries.find((x) => x.path === `blobs/sha256/${sha(ctx.bytes)}`)!
  e.data = Buffer.from(e.data.toString('utf8').replace('ferry-cli', 'ferry-cLi'))
  const bad = join(ctx.fx.dir, 'tampered.ferry.tar')
  await writeEntries(bad, entries)
  const v = await ferry(['bundle', 'verify', bad, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 3, v.stdout)
  assert.is(v.json?.error.code, 'DIGEST_MISMATCH')
  const p = await ferry(['bundle', 'provenance', bad])
  assert.is(p.code, 3, p.stdout)
  assert.match(p.stderr, 'does not match the digest signed in bundle.json')
})

test('a provenance naming another digest for a subject, signed anyway: bundle verify refuses it, exit 3 DOCUMENT_MISMATCH', async () => {
  const entries = await readEntries(ctx.fx.built.path)
  const json = JSON.parse(entries.find((e) => e.path === 'bundle.json')!.data.toString('utf8'))
  const doc = json.artifacts.find((a: any) => a.name === PROVENANCE)
  const old = `blobs/sha256/${doc.digest.slice(7)}`
  const statement = JSON.parse(entries.find((e) => e.path === old)!.data.toString('utf8'))
  statement.subject[0].digest.sha256 = '0'.repeat(64)
  const bytes = Buffer.from(JSON.stringify(statement, null, 2) + '\n')
  doc.digest = `sha256:${sha(bytes)}`
  doc.size = bytes.length
  const json2 = Buffer.from(JSON.stringify(json, null, 2) + '\n')
  const signer = await fileSigner(ctx.fx.priv)
  const sig = Buffer.from(armorSignatures([await signer.sign(json2, new Date(ctx.fx.lock.resolved))]))
  const head = entries.filter((e) => !e.path.startsWith('blobs/')).map((e) => (e.path === 'bundle.json' ? {...e, data: json2} : e.path === 'bundle.json.asc' ? {...e, data: sig} : e))
  const blobs = [...entries.filter((e) => e.path.startsWith('blobs/') && e.path !== old), {path: `blobs/sha256/${doc.digest.slice(7)}`, data: bytes}].sort((a, b) => (a.path < b.path ? -1 : 1))
  const bad = join(ctx.fx.dir, 'lying.ferry.tar')
  await writeEntries(bad, [...head, ...blobs])
  const v = await ferry(['bundle', 'verify', bad, '--key', ctx.fx.pub, '--json'])
  assert.is(v.code, 3, v.stdout)
  assert.is(v.json?.error.code, 'DOCUMENT_MISMATCH')
  assert.match(v.json?.error.message, 'subject vm/azurelinux')
})

async function loadSince(path: string) {
  const {loadBase} = await import('../src/bundle/delta.js')
  return loadBase(path)
}

test.run()
