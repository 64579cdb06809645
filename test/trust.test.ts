import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import * as openpgp from 'openpgp'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {describeKey, generateKeyPair, listKeys, readPublicKeys, writeKeyPair, type KeyPair} from '../src/trust/keys.js'
import {armorSignatures, fileSigner, gpgSigner} from '../src/trust/sign.js'
import {signatureKeyIds, verifyDetached} from '../src/trust/verify.js'
import {FerryError} from '../src/errors.js'
import {makeGnupgHome, writeBytes, type GpgHome} from './helpers/gpg.js'

const DATA = new TextEncoder().encode('{"name":"edge-site","version":"2026.11.0"}\n')
const SIGNED_AT = new Date('2026-11-01T00:00:00Z')
const KEY_DATE = new Date('2026-01-01T00:00:00Z')

let dir = ''
let alice: KeyPair
let bob: KeyPair
let alicePaths: {public: string; private: string}

async function expectError(promise: Promise<unknown>, want: {exit: number; code?: string; includes?: string[]}): Promise<FerryError> {
  try {
    await promise
  } catch (err) {
    assert.instance(err, FerryError, `expected a FerryError, got ${err}`)
    const e = err as FerryError
    assert.is(e.exit, want.exit, `exit of "${e.message}"`)
    if (want.code) assert.is(e.code, want.code, `code of "${e.message}"`)
    for (const part of want.includes ?? []) assert.ok(e.message.includes(part), `"${e.message}" should mention "${part}"`)
    return e
  }
  assert.unreachable('expected an error, the call succeeded')
  throw new Error('unreachable')
}

const flip = (bytes: Uint8Array, at: number) => {
  const copy = new Uint8Array(bytes)
  copy[at] ^= 0x01
  return copy
}

async function setup() {
  dir = await mkdtemp(join(tmpdir(), 'ferry-trust-'))
  alice = await generateKeyPair({name: 'Alice Release', email: 'alice@example.org', date: KEY_DATE})
  bob = await generateKeyPair({name: 'Bob Release', date: KEY_DATE})
  alicePaths = await writeKeyPair(join(dir, 'keys'), 'alice', alice)
  await writeKeyPair(join(dir, 'keys'), 'bob', bob)
}

// ---------------------------------------------------------------- keys
const cleanup = () => rm(dir, {recursive: true, force: true})
const keys = suite('keys')
keys.before(setup)
keys.after(cleanup)

keys('generated keys are v4 EdDSA (Ed25519) sign-only keys that gpg 2.2 can read', async () => {
  const key = await openpgp.readKey({armoredKey: alice.publicArmored})
  assert.is(key.keyPacket.version, 4)
  assert.is(key.getAlgorithmInfo().algorithm, 'eddsaLegacy')
  assert.is(key.getSubkeys().length, 0)
  assert.match(alice.fingerprint, /^[0-9A-F]{40}$/)
  const d = await describeKey(key)
  assert.equal(d, {
    fingerprint: alice.fingerprint,
    userIds: ['Alice Release <alice@example.org>'],
    created: KEY_DATE.toISOString(),
    algorithm: 'EdDSA Ed25519',
    revoked: false,
  })
})

keys('the private key file is created 0600 even with umask 0; the public one is readable', async () => {
  const old = process.umask(0)
  let paths
  try {
    paths = await writeKeyPair(join(dir, 'umask0'), 'k', alice)
  } finally {
    process.umask(old)
  }
  assert.is((await stat(paths.private)).mode & 0o777, 0o600)
  assert.is((await stat(paths.public)).mode & 0o777, 0o644)
  assert.ok((await readFile(paths.private, 'utf8')).includes('PRIVATE KEY BLOCK'))
})

keys('writeKeyPair refuses to overwrite either file and leaves them untouched', async () => {
  const before = await readFile(alicePaths.private, 'utf8')
  await expectError(writeKeyPair(join(dir, 'keys'), 'alice', bob), {exit: 2, code: 'KEY_FILE_EXISTS', includes: ['alice.']})
  assert.is(await readFile(alicePaths.private, 'utf8'), before)
  // only the public file exists: still refused, and no private file is left behind
  const half = join(dir, 'half')
  await writeKeyPair(half, 'x', alice)
  await rm(join(half, 'x.key.asc'))
  await expectError(writeKeyPair(half, 'x', bob), {exit: 2, code: 'KEY_FILE_EXISTS'})
  assert.not.ok(await stat(join(half, 'x.key.asc')).then(() => true, () => false))
})

keys('readPublicKeys reads several armored keys in one file and binary keys, and refuses a private key', async () => {
  const both = await writeBytes(dir, 'both.asc', alice.publicArmored + '\n' + bob.publicArmored)
  const binary = await writeBytes(dir, 'bob.gpg', (await openpgp.readKey({armoredKey: bob.publicArmored})).write())
  const found = await readPublicKeys([both, binary])
  assert.equal(
    found.map((k) => k.getFingerprint().toUpperCase()),
    [alice.fingerprint, bob.fingerprint, bob.fingerprint],
  )
  assert.ok(found.every((k) => !k.isPrivate()))
  await expectError(readPublicKeys([both, alicePaths.private]), {exit: 2, code: 'KEY_IS_PRIVATE', includes: [alicePaths.private, 'public key']})
})

keys('readPublicKeys names the file it cannot read', async () => {
  const junk = await writeBytes(dir, 'junk.asc', 'not a key at all\n')
  await expectError(readPublicKeys([junk]), {exit: 2, code: 'KEY_UNREADABLE', includes: [junk]})
  const sigFile = await writeBytes(dir, 'sig.asc', armorSignatures([await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)]))
  await expectError(readPublicKeys([sigFile]), {exit: 2, code: 'KEY_UNREADABLE', includes: [sigFile, 'signature']})
  await expectError(readPublicKeys([join(dir, 'missing.asc')]), {exit: 2, code: 'KEY_NOT_FOUND', includes: ['missing.asc']})
})

keys('listKeys lists public and private key files and skips other armored files', async () => {
  const folder = join(dir, 'list')
  await writeKeyPair(folder, 'alice', alice)
  await writeBytes(folder, 'README.txt', 'keys of the release team\n')
  await writeBytes(folder, 'checksum.txt.asc', armorSignatures([await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)]))
  const listed = await listKeys(folder)
  assert.equal(
    listed.map((k) => [k.file, k.fingerprint, k.private, k.userIds[0]]),
    [
      [join(folder, 'alice.key.asc'), alice.fingerprint, true, 'Alice Release <alice@example.org>'],
      [join(folder, 'alice.pub.asc'), alice.fingerprint, false, 'Alice Release <alice@example.org>'],
    ],
  )
  await expectError(listKeys(join(dir, 'nope')), {exit: 2, code: 'KEYS_DIR_NOT_FOUND'})
})

// ---------------------------------------------------------------- sign and verify with openpgp.js
const sv = suite('sign and verify')
sv.before(setup)
sv.after(cleanup)

sv('the same key, bytes and date give byte-identical signatures; another date does not', async () => {
  const signer = await fileSigner(alicePaths.private)
  assert.is(signer.fingerprint, alice.fingerprint)
  const a = await signer.sign(DATA, SIGNED_AT)
  const b = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  assert.equal(Buffer.from(a), Buffer.from(b))
  const c = await signer.sign(DATA, new Date(SIGNED_AT.getTime() + 1000))
  assert.not.equal(Buffer.from(a), Buffer.from(c))
})

sv('a signature verifies armored and binary, and reports signer and time', async () => {
  const trusted = await readPublicKeys([alicePaths.public])
  const sig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  const want = {signers: [{fingerprint: alice.fingerprint, created: SIGNED_AT.toISOString()}], unknownKeyIds: [], rejected: []}
  assert.equal(await verifyDetached(DATA, sig, trusted), want)
  assert.equal(await verifyDetached(DATA, armorSignatures([sig]), trusted), want)
  assert.equal(await verifyDetached(DATA, new TextEncoder().encode(armorSignatures([sig])), trusted), want)
})

sv('a signature by an unknown key is refused, naming the key id', async () => {
  const trusted = await readPublicKeys([join(dir, 'keys', 'bob.pub.asc')])
  const sig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  const keyId = alice.fingerprint.slice(-16)
  await expectError(verifyDetached(DATA, sig, trusted, {what: 'bundle.json.asc'}), {
    exit: 4,
    code: 'SIGNATURE_UNKNOWN_KEY',
    includes: ['bundle.json.asc', keyId],
  })
})

sv('one flipped byte of the data is refused', async () => {
  const trusted = await readPublicKeys([alicePaths.public])
  const sig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  await expectError(verifyDetached(flip(DATA, 10), sig, trusted, {what: 'bundle.json.asc'}), {
    exit: 4,
    code: 'SIGNATURE_BAD',
    includes: ['bundle.json.asc', 'does not match'],
  })
})

sv('a corrupted, truncated, empty or non-signature file is refused', async () => {
  const trusted = await readPublicKeys([alicePaths.public])
  const sig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  await expectError(verifyDetached(DATA, flip(sig, sig.length - 3), trusted), {exit: 4, code: 'SIGNATURE_BAD'})
  await expectError(verifyDetached(DATA, sig.subarray(0, sig.length - 20), trusted), {exit: 4, code: 'SIGNATURE_MALFORMED'})
  await expectError(verifyDetached(DATA, new Uint8Array(0), trusted), {exit: 4, code: 'SIGNATURE_MISSING'})
  await expectError(verifyDetached(DATA, armorSignatures([]), trusted), {exit: 4})
  // a well-formed signature packet that signs a key, not data
  const certification = new openpgp.PacketList<openpgp.SignaturePacket>()
  certification.push((await openpgp.readKey({armoredKey: alice.publicArmored})).users[0].selfCertifications[0])
  const packet = certification.write()
  await expectError(verifyDetached(DATA, armorSignatures([packet]), trusted, {what: 'cert.asc'}), {
    exit: 4,
    code: 'SIGNATURE_MISSING',
    includes: ['cert.asc'],
  })
  await expectError(verifyDetached(DATA, alice.publicArmored, trusted, {what: 'x.asc'}), {exit: 4, code: 'SIGNATURE_MALFORMED', includes: ['x.asc']})
  const armored = armorSignatures([sig]).replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!')
  await expectError(verifyDetached(DATA, armored, trusted), {exit: 4, code: 'SIGNATURE_MALFORMED'})
})

sv('signatures by a revoked key are refused', async () => {
  const priv = await openpgp.readPrivateKey({armoredKey: alice.privateArmored})
  const sig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  const {publicKey: revoked} = await openpgp.revokeKey({key: priv, format: 'object'})
  assert.ok((await describeKey(revoked)).revoked)
  await expectError(verifyDetached(DATA, sig, [revoked]), {exit: 4, code: 'SIGNATURE_KEY_REVOKED', includes: [alice.fingerprint]})
})

sv('signatures by an expired key are refused', async () => {
  const shortLived = await generateKeyPair({name: 'Short', date: KEY_DATE})
  const priv = await openpgp.readPrivateKey({armoredKey: shortLived.privateArmored})
  const {privateKey} = await openpgp.reformatKey({privateKey: priv, userIDs: [{name: 'Short'}], keyExpirationTime: 86400, date: KEY_DATE, format: 'armored'})
  const keyFile = await writeBytes(dir, 'short.key.asc', privateKey)
  const sig = await (await fileSigner(keyFile)).sign(DATA, new Date(KEY_DATE.getTime() + 3600_000))
  const trusted = [(await openpgp.readPrivateKey({armoredKey: privateKey})).toPublic()]
  assert.ok((await describeKey(trusted[0])).expires)
  await expectError(verifyDetached(DATA, sig, trusted), {exit: 4, code: 'SIGNATURE_KEY_EXPIRED'})
  // while the key was still valid, the same signature was good
  const atTheTime = await verifyDetached(DATA, sig, trusted, {date: new Date(KEY_DATE.getTime() + 7200_000)})
  assert.is(atTheTime.signers.length, 1)
})

sv('several signers share one armored block; each trusted signer is reported', async () => {
  const bobPath = join(dir, 'keys', 'bob.key.asc')
  const parts = [await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT), await (await fileSigner(bobPath)).sign(DATA, SIGNED_AT)]
  const block = armorSignatures(parts)
  assert.is(block.match(/BEGIN PGP SIGNATURE/g)?.length, 1)
  assert.equal(await signatureKeyIds(block), [alice.fingerprint, bob.fingerprint])
  const both = await verifyDetached(DATA, block, await readPublicKeys([alicePaths.public, join(dir, 'keys', 'bob.pub.asc')]))
  assert.equal(both.signers.map((s) => s.fingerprint), [alice.fingerprint, bob.fingerprint])
  const one = await verifyDetached(DATA, block, await readPublicKeys([join(dir, 'keys', 'bob.pub.asc')]))
  assert.equal(one.signers.map((s) => s.fingerprint), [bob.fingerprint])
  assert.equal(one.unknownKeyIds, [alice.fingerprint])
})

sv('a passphrase-protected key needs its passphrase', async () => {
  const locked = await generateKeyPair({name: 'Locked', passphrase: 'correct horse', date: KEY_DATE})
  const paths = await writeKeyPair(join(dir, 'locked'), 'locked', locked)
  await expectError(fileSigner(paths.private), {exit: 2, code: 'KEY_PASSPHRASE_REQUIRED', includes: ['--passphrase-env']})
  await expectError(fileSigner(paths.private, 'wrong'), {exit: 2, code: 'KEY_PASSPHRASE_WRONG'})
  const sig = await (await fileSigner(paths.private, 'correct horse')).sign(DATA, SIGNED_AT)
  const result = await verifyDetached(DATA, sig, await readPublicKeys([paths.public]))
  assert.is(result.signers[0].fingerprint, locked.fingerprint)
})

sv('signing needs a private key and a date after the key was made', async () => {
  await expectError(fileSigner(alicePaths.public), {exit: 2, code: 'KEY_NOT_PRIVATE', includes: [alicePaths.public]})
  const signer = await fileSigner(alicePaths.private)
  await expectError(signer.sign(DATA, new Date('2025-06-01T00:00:00Z')), {exit: 2, code: 'SIGNATURE_DATE_BEFORE_KEY'})
})

// ---------------------------------------------------------------- interop with gpg
const gpg = suite('gpg interop')
let g: GpgHome
let gpgEd = ''
let gpgRsa = ''
gpg.before(async () => {
  await setup()
  g = await makeGnupgHome()
  gpgEd = await g.generateKey({name: 'Gpg Ed', email: 'ed@example.org'})
  gpgRsa = await g.generateKey({name: 'Gpg Rsa', algo: 'rsa3072'})
})
gpg.after(async () => {
  await g?.cleanup()
  await cleanup()
})

gpg('gpg imports a Ferry public key and accepts its signatures, armored and binary', async () => {
  await g.import(alicePaths.public)
  const dataFile = await writeBytes(dir, 'bundle.json', DATA)
  const sig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  const armored = await writeBytes(dir, 'bundle.json.asc', armorSignatures([sig]))
  const binary = await writeBytes(dir, 'bundle.json.sig', sig)
  for (const file of [armored, binary]) {
    const r = await g.verify(file, dataFile)
    assert.ok(r.ok, r.output)
    assert.equal(r.valid, [alice.fingerprint])
  }
  const tampered = await writeBytes(dir, 'tampered.json', flip(DATA, 3))
  assert.not.ok((await g.verify(armored, tampered)).ok)
})

gpg('Ferry verifies gpg signatures (Ed25519 and RSA, armored and binary) with gpg-exported keys', async () => {
  const dataFile = await writeBytes(dir, 'checksum.txt', DATA)
  for (const fpr of [gpgEd, gpgRsa]) {
    const pubFile = await writeBytes(dir, `${fpr}.asc`, await g.exportPublic(fpr))
    const binPub = await writeBytes(dir, `${fpr}.gpg`, await g.exportPublic(fpr, {armor: false}))
    for (const armor of [true, false]) {
      const sigFile = await g.signDetached(fpr, dataFile, {armor})
      const sig = await readFile(sigFile)
      for (const keyFile of [pubFile, binPub]) {
        const result = await verifyDetached(DATA, armor ? sig.toString('utf8') : new Uint8Array(sig), await readPublicKeys([keyFile]))
        assert.equal(result.signers.map((s) => s.fingerprint), [fpr])
      }
      await expectError(verifyDetached(flip(DATA, 0), new Uint8Array(sig), await readPublicKeys([pubFile])), {exit: 4, code: 'SIGNATURE_BAD'})
    }
  }
})

gpg('a signature by a signing subkey is accepted and reported under the primary fingerprint', async () => {
  const fpr = await g.generateKey({name: 'Gpg Sub', signSubkey: true})
  const dataFile = await writeBytes(dir, 'sub.json', DATA)
  const sig = await readFile(await g.signDetached(fpr, dataFile, {armor: false}))
  const trusted = await readPublicKeys([await writeBytes(dir, 'sub.asc', await g.exportPublic(fpr))])
  assert.is(trusted[0].getSubkeys().length, 1)
  const [issuer] = await signatureKeyIds(new Uint8Array(sig))
  assert.is.not(issuer, fpr, 'gpg signed with the subkey')
  const result = await verifyDetached(DATA, new Uint8Array(sig), trusted)
  assert.equal(result.signers.map((s) => s.fingerprint), [fpr])
})

gpg('gpgSigner signs through gpg at the given date; Ferry and gpg both accept it', async () => {
  const signer = await gpgSigner(gpgEd.slice(-16), {gnupgHome: g.home})
  assert.is(signer.fingerprint, gpgEd)
  // the gpg key was made just now; sign a minute later (gpg refuses times before a key's creation)
  const at = new Date((Math.floor(Date.now() / 1000) + 60) * 1000)
  const sig = await signer.sign(DATA, at)
  const trusted = await readPublicKeys([await writeBytes(dir, 'ed.asc', await g.exportPublic(gpgEd))])
  const result = await verifyDetached(DATA, sig, trusted, {date: new Date(at.getTime() + 1000)})
  assert.equal(result.signers, [{fingerprint: gpgEd, created: at.toISOString()}])
  await expectError(signer.sign(DATA, new Date('2020-01-01T00:00:00Z')), {exit: 2, code: 'SIGNATURE_DATE_BEFORE_KEY'})
  const ferrySig = await (await fileSigner(alicePaths.private)).sign(DATA, SIGNED_AT)
  const both = await writeBytes(dir, 'both.json.asc', armorSignatures([ferrySig, sig]))
  await g.import(alicePaths.public)
  const r = await g.verify(both, await writeBytes(dir, 'both.json', DATA))
  assert.ok(r.ok, r.output)
  assert.equal(r.valid.sort(), [alice.fingerprint, gpgEd].sort())
})

gpg('gpgSigner refuses an unknown key and a missing gpg with usage errors', async () => {
  await expectError(gpgSigner('0123456789ABCDEF0123456789ABCDEF01234567', {gnupgHome: g.home}), {
    exit: 2,
    code: 'GPG_KEY_UNKNOWN',
    includes: ['0123456789ABCDEF0123456789ABCDEF01234567'],
  })
  const path = process.env.PATH
  process.env.PATH = join(dir, 'no-bin')
  try {
    await expectError(gpgSigner(gpgEd, {gnupgHome: g.home}), {exit: 2, code: 'GPG_NOT_FOUND'})
  } finally {
    process.env.PATH = path
  }
})

keys.run()
sv.run()
gpg.run()
