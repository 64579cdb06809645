// Errors a new user hits, through the built binary: each is a usage error with its own code in the
// --json envelope, and its message says what to do next.
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {execFileSync} from 'node:child_process'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const ctx = {} as {dir: string; server: FileServer; key: string; pub: string; manifest: string; lock: string; bundle: string; file: string}

/** Runs the CLI with --json and checks exit code, error code and that the message names the fix. */
async function refused(args: string[], code: string, fix: RegExp, status = 2) {
  const r = await ferry([...args, '--json'])
  assert.is(r.code, status, r.stdout + r.stderr)
  assert.is(r.json?.status, status, r.stdout)
  assert.is(r.json?.error?.code, code, r.stdout)
  assert.match(r.json?.error?.message ?? '', fix)
  return r.json!.error!.message
}

const manifestText = (extra = '') => `apiVersion: ferry/v1
kind: Bundle
metadata: {name: err-site, version: 1.0.0}
spec:
  platforms: [linux/amd64]
  files:
    - {url: ${ctx.server.url}/tool.bin, sha256: "${sha(Buffer.from('tool'))}"}
${extra}`

const test = suite('errors that name the fix')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-errors-'))
  const up = join(ctx.dir, 'upstream')
  await mkdir(up)
  await writeFile(join(up, 'tool.bin'), 'tool')
  await writeFile(join(up, 'SHA256SUMS'), `${sha(randomBytes(4))}  disk.vhdx\n`)
  await writeFile(join(up, 'SHA256SUMS.asc'), 'not checked: the key is refused first\n')
  ctx.server = await startFileServer({root: up})
  const files = await writeKeyPair(join(ctx.dir, 'keys'), 'release', await generateKeyPair({name: 'Errors'}))
  ctx.key = files.private
  ctx.pub = files.public
  ctx.manifest = join(ctx.dir, 'site.yaml')
  await writeFile(ctx.manifest, manifestText())
  const locked = await ferry(['manifest', 'lock', ctx.manifest, '--json'])
  assert.is(locked.code, 0, locked.stdout + locked.stderr)
  ctx.lock = join(ctx.dir, 'site.lock.json')
  const built = await ferry(['bundle', 'build', ctx.lock, '--key', ctx.key, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(built.code, 0, built.stdout + built.stderr)
  ctx.bundle = built.json!.result.path
  ctx.file = join(ctx.dir, 'a-file')
  await writeFile(ctx.file, 'not a folder\n')
})

test.after(() => ctx.server.close())

test('a lock where a manifest is expected: IS_A_LOCK names the manifest and bundle build', async () => {
  for (const args of [['manifest', 'check', ctx.lock], ['manifest', 'lock', ctx.lock], ['release', 'run', ctx.lock, '--key', ctx.key, '--out', join(ctx.dir, 'rel')]]) {
    const message = await refused(args, 'IS_A_LOCK', /is a lock .*not a manifest: give the manifest \(\.yaml\) it was made from; "ferry bundle build /)
    assert.not.match(message, /unknown field/, 'not a list of schema complaints')
  }
})

test('a manifest where a lock or a base is expected: IS_A_MANIFEST names "ferry manifest lock"', async () => {
  const misnamed = join(ctx.dir, 'misnamed.lock.json')
  await writeFile(misnamed, await readFile(ctx.manifest))
  const base = ['bundle', 'build', ctx.lock, '--key', ctx.key, '--out', join(ctx.dir, 'out2'), '--since']
  await refused([...base, misnamed], 'IS_A_MANIFEST', /is a manifest, not a lock: make its lock with "ferry manifest lock /)
  await refused([...base, ctx.manifest], 'IS_A_MANIFEST', /give the older bundle \(\.ferry\.tar.*or the lock/)
})

test('no signing key: NO_SIGNER is exit 2, names --key, --gpg-key and "ferry keys generate", before anything is fetched', async () => {
  const before = ctx.server.requests.length
  await refused(['bundle', 'build', ctx.manifest, '--out', join(ctx.dir, 'out3')], 'NO_SIGNER', /--key FILE.*--gpg-key FINGERPRINT.*"ferry keys generate --name release --out keys\/"/)
  await refused(['release', 'run', ctx.manifest, '--out', join(ctx.dir, 'rel')], 'NO_SIGNER', /a release must be signed: give --key/)
  assert.is(ctx.server.requests.length, before, 'the manifest was not locked first')
})

test('a file where a folder is expected: NOT_A_FOLDER names the flag and asks for a folder', async () => {
  const build = ['bundle', 'build', ctx.lock, '--key', ctx.key]
  await refused([...build, '--out', ctx.file, '--store', join(ctx.dir, 'store')], 'NOT_A_FOLDER', /^--out .*a-file is a file, not a folder; give a folder/)
  await refused([...build, '--out', join(ctx.dir, 'out4'), '--store', join(ctx.file, 'store')], 'NOT_A_FOLDER', /--store.*a-file is a file.*give a folder/)
  await refused(['release', 'run', ctx.manifest, '--key', ctx.key, '--out', ctx.file], 'NOT_A_FOLDER', /^--out .* is a file, not a folder/)
  await refused(['keys', 'generate', '--name', 'x', '--out', ctx.file], 'NOT_A_FOLDER', /^--out .* is a file, not a folder/)
  await refused(['usb', 'write', ctx.bundle, ctx.file], 'NOT_A_FOLDER', /is a file, not a folder: give the folder where the stick is mounted/)
  await refused(['manifest', 'lock', ctx.manifest, '--out', join(ctx.file, 'site.lock.json')], 'NOT_A_FOLDER', /is a file, not a folder; the lock site\.lock\.json cannot be written there/)
})

test('something that is not a bundle: NOT_A_BUNDLE (exit 2) for verify and inspect, naming what a bundle is', async () => {
  const tgz = join(ctx.dir, 'images.tar.gz')
  execFileSync('tar', ['czf', tgz, '-C', ctx.dir, 'site.yaml'])
  const plainTar = join(ctx.dir, 'other.tar')
  execFileSync('tar', ['cf', plainTar, '-C', ctx.dir, 'site.yaml'])
  const names = /give a \.ferry\.tar written by "ferry bundle build", a USB stick folder or a \.parts\.json/
  await refused(['bundle', 'verify', '/etc/passwd', '--key', ctx.pub], 'NOT_A_BUNDLE', new RegExp(`/etc/passwd is not a Ferry bundle \\(not a tar archive\\): ${names.source}`))
  await refused(['bundle', 'inspect', tgz], 'NOT_A_BUNDLE', new RegExp(`gzip-compressed, not a Ferry bundle.*${names.source}`))
  await refused(['bundle', 'inspect', plainTar], 'NOT_A_BUNDLE', /a tar archive but not a Ferry bundle \(its first entry is "site\.yaml", not bundle\.json\)/)
  await refused(['bundle', 'verify', '/etc/passwd'], 'NOT_A_BUNDLE', names)
})

test('a private key where a public key is expected: KEY_IS_PRIVATE (exit 2) names the public key to give', async () => {
  const root = join(ctx.dir, 'device')
  await mkdir(join(root, 'var', 'lib', 'ferry'), {recursive: true})
  await refused(['device', 'trust', 'add', ctx.key, '--root', root], 'KEY_IS_PRIVATE', /holds a private key; a device trusts public keys only: give the \.pub\.asc file/)
  await refused(['bundle', 'verify', ctx.bundle, '--key', ctx.key], 'KEY_IS_PRIVATE', /--key .*release\.key\.asc holds a private key; give its public key instead \(the NAME\.pub\.asc beside it/)
  await refused(['bundle', 'inspect', ctx.bundle, '--key', ctx.key], 'KEY_IS_PRIVATE', /holds a private key/)
  const vm = join(ctx.dir, 'vm', 'site.yaml')
  await mkdir(join(ctx.dir, 'vm'))
  await writeFile(join(ctx.dir, 'vm', 'upstream.key.asc'), await readFile(ctx.key))
  await writeFile(
    vm,
    manifestText(`  vm:
    - name: azurelinux
      url: ${ctx.server.url}/disk.vhdx
      checksums: ${ctx.server.url}/SHA256SUMS
      signature: {url: ${ctx.server.url}/SHA256SUMS.asc, key: upstream.key.asc}
`),
  )
  await refused(['manifest', 'lock', vm], 'KEY_IS_PRIVATE', /the manifest's signature\.key .*upstream\.key\.asc holds a private key; give its public key instead/)
})

test('a misspelt command, flag or manifest field names the right one', async () => {
  await refused(['bundle', 'buidl', ctx.manifest], 'UNKNOWN_COMMAND', /unknown command "bundle buidl" \(did you mean "ferry bundle build"\?\)/)
  await refused(['bundle', 'build', ctx.lock, '--kye', ctx.key], 'USAGE', /--kye.*\(did you mean "--key"\?\)/)
  const typo = join(ctx.dir, 'typo', 'site.yaml')
  await mkdir(join(ctx.dir, 'typo'))
  await writeFile(typo, manifestText().replace('version: 1.0.0', 'verison: 1.0.0').replace('platforms:', 'platfroms:'))
  const message = await refused(['manifest', 'check', typo], 'MANIFEST_INVALID', /metadata\.verison: unknown field \(did you mean "version"\?\)/)
  assert.match(message, /spec\.platfroms: unknown field \(did you mean "platforms"\?\)/)
})

test.run()
