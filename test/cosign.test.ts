// Cosign key signatures checked at lock and at build, against a real loopback docker-registry:
// signatures made here with node:crypto exactly as cosign 1.x/2.x (`.sig` tag, simple signing)
// and 3.x (sigstore bundle referrer, DSSE over an in-toto statement) write them.
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {FerryError} from '../src/errors.js'
import {lockManifest, writeLock} from '../src/manifest/lock.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {headManifest, makeKey, pushBundleReferrer, pushSigTag, writePublicKey, type TestKey} from './helpers/cosign.js'
import {makeImages, skopeo, startRegistry, type Registry} from './helpers/registry.js'

const ctx = {} as {dir: string; registry: Registry; key: TestKey; other: TestKey; ed: TestKey; rsa: TestKey; digest: string; multi: string; priv: string}
const test = suite('cosign')
const REPOS = ['good', 'otherkey', 'otherdigest', 'truncated', 'missing', 'dsse', 'dssesubject', 'ed', 'rsa', 'team/one', 'team/two', 'both', 'pair']

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-cosign-'))
  const layout = join(ctx.dir, 'layout')
  makeImages(layout, 1, 1, 0.02, 0.02)
  ctx.registry = await startRegistry(join(ctx.dir, 'registry'))
  const h = ctx.registry.host
  for (const repo of REPOS) await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:img0`, `docker://${h}/s/${repo}:v1`])
  await skopeo(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${h}/s/multi:v1`])
  const image = await headManifest(h, 's/good', 'v1')
  ctx.digest = image.digest
  ctx.multi = (await headManifest(h, 's/multi', 'v1')).digest
  ctx.key = makeKey('ec')
  ctx.other = makeKey('ec')
  ctx.ed = makeKey('ed25519')
  ctx.rsa = makeKey('rsa')
  for (const [name, k] of [['app', ctx.key], ['other', ctx.other], ['ed', ctx.ed], ['rsa', ctx.rsa]] as const) await writePublicKey(k, join(ctx.dir, `${name}.pub`))
  const d = ctx.digest
  await pushSigTag(h, 's/good', d, ctx.key)
  await pushSigTag(h, 's/otherkey', d, ctx.other)
  await pushSigTag(h, 's/otherdigest', d, ctx.key, {claim: ctx.multi})
  await pushSigTag(h, 's/truncated', d, ctx.key, {truncate: 40})
  await pushSigTag(h, 's/ed', d, ctx.ed)
  await pushSigTag(h, 's/rsa', d, ctx.rsa)
  await pushSigTag(h, 's/team/one', d, ctx.key)
  await pushSigTag(h, 's/team/two', d, ctx.key)
  await pushSigTag(h, 's/pair', d, ctx.other)
  await pushSigTag(h, 's/multi', ctx.multi, ctx.key)
  await pushBundleReferrer(h, 's/dsse', image, ctx.key)
  await pushBundleReferrer(h, 's/dssesubject', image, ctx.key, {subject: ctx.multi})
  // both forms at once: an old .sig by another key, a 3.x bundle by the right one
  await pushSigTag(h, 's/both', d, ctx.other)
  await pushBundleReferrer(h, 's/both', image, ctx.key)
  const pair = await writeKeyPair(join(ctx.dir, 'pgp'), 'release', await generateKeyPair({name: 'test', date: new Date(Date.now() - 60_000)}))
  ctx.priv = pair.private
})

test.after(async () => {
  await ctx.registry?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

let n = 0
async function manifest(images: string, extra = ''): Promise<string> {
  const file = join(ctx.dir, `site-${++n}.yaml`)
  await writeFile(file, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: signed, version: 1.0.0}\nspec:\n  platforms: [linux/amd64]\n  images:\n${images}${extra}`)
  return file
}

const signed = (repo: string, key = 'app.pub') => `    - {ref: ${ctx.registry.host}/s/${repo}:v1, cosign: {key: ${key}}}\n`
const lock = async (file: string) => lockManifest(file, {store: undefined})

async function refused(file: string): Promise<FerryError> {
  try {
    await lock(file)
  } catch (err) {
    assert.instance(err, FerryError)
    assert.is((err as FerryError).exit, 4, (err as Error).message)
    assert.not.match((err as Error).message, /\n/)
    return err as FerryError
  }
  throw new Error('the lock was made')
}

test('a cosign 1.x/2.x .sig signature by the named key: the lock records the key that verified it', async () => {
  const got = await lock(await manifest(signed('good')))
  const a = got.artifacts[0]
  assert.is(a.upstream.verifiedBy, 'cosign')
  assert.is(a.upstream.key, ctx.key.fingerprint)
  assert.is(a.cosign?.key, ctx.key.fingerprint)
  assert.is(a.cosign?.keyFile, 'app.pub')
  assert.is(a.cosign?.form, 'simplesigning')
  assert.is(a.cosign?.via, `${ctx.digest.replace(':', '-')}.sig`)
  assert.is(a.cosign?.manifest.digest, (await headManifest(ctx.registry.host, 's/good', `${ctx.digest.replace(':', '-')}.sig`)).digest)
})

test('a signature by another key is refused (exit 4: image, key and reason in one line)', async () => {
  const err = await refused(await manifest(signed('otherkey')))
  assert.match(err.message, `${ctx.registry.host}/s/otherkey:v1@${ctx.digest}`)
  assert.match(err.message, 'app.pub (sha256:')
  assert.match(err.message, 'does not verify with this key')
})

test('a good signature over a payload naming another digest is refused', async () => {
  const err = await refused(await manifest(signed('otherdigest')))
  assert.match(err.message, `the signed payload is for ${ctx.multi}, not this image`)
})

test('a truncated signature is refused', async () => {
  const err = await refused(await manifest(signed('truncated')))
  assert.match(err.message, 'does not verify')
})

test('no signature at all is refused, naming both places looked in', async () => {
  const err = await refused(await manifest(signed('missing')))
  assert.is(err.code, 'IMAGE_UNSIGNED')
  assert.match(err.message, `${ctx.digest.replace(':', '-')}.sig`)
  assert.match(err.message, 'referrer')
})

test('an unsigned image stays as it is when no key names it', async () => {
  const got = await lock(await manifest(`    - ${ctx.registry.host}/s/missing:v1\n`))
  assert.is(got.artifacts[0].upstream.verifiedBy, 'registry')
  assert.is(got.artifacts[0].cosign, undefined)
})

test('a multi-arch image is signed on its index digest', async () => {
  const got = await lock(await manifest(signed('multi')))
  assert.is(got.artifacts[0].sha256, ctx.multi.slice(7))
  assert.is(got.artifacts[0].cosign?.key, ctx.key.fingerprint)
})

test('a cosign 3.x sigstore bundle referrer (fallback tag index) verifies over DSSE PAE', async () => {
  const got = await lock(await manifest(signed('dsse')))
  assert.is(got.artifacts[0].cosign?.form, 'sigstore-bundle')
  assert.is(got.artifacts[0].cosign?.via, ctx.digest.replace(':', '-'))
})

test('a DSSE statement whose subject is another image is refused', async () => {
  const err = await refused(await manifest(signed('dssesubject')))
  assert.match(err.message, `the signed statement's subject is ${ctx.multi}, not this image`)
})

test('Ed25519 and RSA keys verify too', async () => {
  const got = await lock(await manifest(signed('ed', 'ed.pub') + signed('rsa', 'rsa.pub')))
  const byName = Object.fromEntries(got.artifacts.map((a) => [a.name, a]))
  assert.is(byName[`images/${ctx.registry.host}/s/ed:v1`].cosign?.key, ctx.ed.fingerprint)
  assert.is(byName[`images/${ctx.registry.host}/s/rsa:v1`].cosign?.key, ctx.rsa.fingerprint)
})

test('keys: any one suffices, and the lock names the one that verified', async () => {
  const got = await lock(await manifest(`    - {ref: ${ctx.registry.host}/s/pair:v1, cosign: {keys: [app.pub, other.pub]}}\n`))
  assert.is(got.artifacts[0].cosign?.keyFile, 'other.pub')
  const both = await lock(await manifest(signed('both')))
  assert.is(both.artifacts[0].cosign?.form, 'sigstore-bundle')
})

test('spec.cosign applies a key to every image whose repository matches the glob', async () => {
  const h = ctx.registry.host
  const file = await manifest(`    - ${h}/s/team/one:v1\n    - ${h}/s/team/two:v1\n    - ${h}/s/missing:v1\n`, `  cosign:\n    - {match: "${h}/s/team/*", key: app.pub}\n`)
  const got = await lock(file)
  const keyed = got.artifacts.filter((a) => a.cosign).map((a) => a.name)
  assert.equal(keyed.sort(), [`images/${h}/s/team/one:v1`, `images/${h}/s/team/two:v1`])
  const strict = await manifest(`    - ${h}/s/missing:v1\n`, `  cosign:\n    - {match: "${h}/**", key: app.pub}\n`)
  assert.is((await refused(strict)).code, 'IMAGE_UNSIGNED')
})

test('a key file that is not there is exit 2 naming the field', async () => {
  try {
    await lock(await manifest(signed('good', 'nope.pub')))
    assert.unreachable('locked')
  } catch (err) {
    assert.is((err as FerryError).exit, 2)
    assert.match((err as Error).message, 'spec.images[0].cosign: cosign key nope.pub: no such file')
  }
})

test('end to end: lock refuses with exit 4 in the JSON envelope; build checks the signature again with the lock\'s key', async () => {
  const bad = await ferry(['manifest', 'lock', await manifest(signed('otherkey')), '--out', join(ctx.dir, 'bad.lock.json'), '--json'])
  assert.is(bad.code, 4, bad.stdout + bad.stderr)
  assert.is(bad.json?.error?.code, 'IMAGE_SIGNATURE_INVALID')
  const lockFile = join(ctx.dir, 'good.lock.json')
  const ok = await ferry(['manifest', 'lock', await manifest(signed('good') + signed('dsse')), '--out', lockFile, '--json'])
  assert.is(ok.code, 0, ok.stdout + ok.stderr)
  const store = join(ctx.dir, 'store')
  const built = await ferry(['bundle', 'build', lockFile, '--key', ctx.priv, '--out', join(ctx.dir, 'out'), '--store', store, '--json'])
  assert.is(built.code, 0, built.stdout + built.stderr)
  // A lock whose recorded key is not the signer's: the build refuses it before fetching anything.
  const edited = JSON.parse(await readFile(lockFile, 'utf8'))
  edited.artifacts[0].cosign.publicKey = ctx.other.publicPem
  await writeLock(edited, join(ctx.dir, 'edited.lock.json'))
  const again = await ferry(['bundle', 'build', join(ctx.dir, 'edited.lock.json'), '--key', ctx.priv, '--out', join(ctx.dir, 'out2'), '--store', store, '--json'])
  assert.is(again.code, 4, again.stdout + again.stderr)
  assert.match(again.json?.error?.message ?? '', 'does not verify with this key')
})

test.run()
