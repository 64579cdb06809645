// `ferry keys generate` and `ferry keys list` end to end through the ferry binary.
import {spawn} from 'node:child_process'
import {existsSync, statSync} from 'node:fs'
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import * as openpgp from 'openpgp'
import {test} from 'uvu'
import * as assert from 'uvu/assert'
import {fileSigner} from '../src/trust/sign.js'

const root = new URL('..', import.meta.url).pathname

/** The built CLI when dist/ is at least as new as the command sources; otherwise the TypeScript entry point. */
function entry(): string {
  const built = ['generate', 'list'].every((verb) => {
    const js = join(root, 'dist/commands/keys', `${verb}.js`)
    return existsSync(js) && statSync(js).mtimeMs >= statSync(join(root, 'src/commands/keys', `${verb}.ts`)).mtimeMs
  })
  return join(root, built ? 'bin/run.js' : 'bin/dev.js')
}
const BIN = entry()

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function ferry(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const execArgs = BIN.endsWith('dev.js') ? ['--import', 'tsx', '--no-warnings'] : ['--no-warnings']
    const child = spawn(process.execPath, [...execArgs, BIN, ...args], {cwd: root, env: {...process.env, NO_COLOR: '1', ...env}})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

async function ferryJson(args: string[], env?: Record<string, string | undefined>) {
  const run = await ferry([...args, '--json'], env)
  let body
  try {
    body = JSON.parse(run.stdout)
  } catch {
    throw new Error(`not one JSON object on stdout (exit ${run.code}):\n${run.stdout}\n${run.stderr}`)
  }
  assert.is(run.code, body.status, 'exit code equals the envelope status')
  return body
}

let dir = ''
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-keys-cli-'))
})
test.after(async () => {
  await rm(dir, {recursive: true, force: true})
})

test('keys generate --json writes a usable key pair and reports it', async () => {
  const out = join(dir, 'keys')
  const {status, result} = await ferryJson(['keys', 'generate', '--name', 't', '--email', 't@example.org', '--out', out])
  assert.is(status, 0)
  assert.equal(result, {fingerprint: result.fingerprint, public: join(out, 't.pub.asc'), private: join(out, 't.key.asc')})
  assert.match(result.fingerprint, /^[0-9A-F]{40}$/)
  assert.is((await stat(result.private)).mode & 0o777, 0o600)
  const pub = await openpgp.readKey({armoredKey: await readFile(result.public, 'utf8')})
  assert.not.ok(pub.isPrivate())
  assert.is(pub.getFingerprint().toUpperCase(), result.fingerprint)
  assert.equal(pub.getUserIDs(), ['t <t@example.org>'])
  const signer = await fileSigner(result.private)
  assert.is(signer.fingerprint, result.fingerprint)
})

test('keys generate prints where the files went and warns to keep the private key out of git', async () => {
  const run = await ferry(['keys', 'generate', '--name', 'human', '--out', join(dir, 'human')])
  assert.is(run.code, 0, run.stderr)
  assert.ok(run.stdout.includes(join(dir, 'human', 'human.pub.asc')), run.stdout)
  assert.ok(run.stdout.includes(join(dir, 'human', 'human.key.asc')), run.stdout)
  assert.match(run.stdout, /never commit the private key/i)
})

test('keys generate refuses to overwrite an existing key (exit 2)', async () => {
  const out = join(dir, 'twice')
  const first = await ferryJson(['keys', 'generate', '--name', 'k', '--out', out])
  const before = await readFile(first.result.private, 'utf8')
  const second = await ferryJson(['keys', 'generate', '--name', 'k', '--out', out])
  assert.is(second.status, 2)
  assert.is(second.error.code, 'KEY_FILE_EXISTS')
  assert.is(await readFile(first.result.private, 'utf8'), before)
})

test('keys generate --passphrase-env encrypts the private key with the variable it names', async () => {
  const out = join(dir, 'locked')
  const {status, result} = await ferryJson(['keys', 'generate', '--name', 'l', '--out', out, '--passphrase-env', 'T_PASS'], {T_PASS: 's3cret pass'})
  assert.is(status, 0)
  const priv = await openpgp.readPrivateKey({armoredKey: await readFile(result.private, 'utf8')})
  assert.not.ok(priv.isDecrypted())
  assert.is((await fileSigner(result.private, 's3cret pass')).fingerprint, result.fingerprint)
  const unset = await ferryJson(['keys', 'generate', '--name', 'm', '--out', out, '--passphrase-env', 'T_PASS_UNSET'], {T_PASS_UNSET: undefined})
  assert.is(unset.status, 2)
  assert.is(unset.error.code, 'PASSPHRASE_ENV_EMPTY')
  assert.ok(unset.error.message.includes('T_PASS_UNSET'))
})

test('keys generate without --name is a usage error (exit 2)', async () => {
  const run = await ferry(['keys', 'generate', '--out', dir])
  assert.is(run.code, 2)
})

test('keys list --json returns every key with file, fingerprint, user ids and kind', async () => {
  const out = join(dir, 'list')
  const a = (await ferryJson(['keys', 'generate', '--name', 'a', '--out', out])).result
  const b = (await ferryJson(['keys', 'generate', '--name', 'b', '--email', 'b@example.org', '--out', out])).result
  const {status, result} = await ferryJson(['keys', 'list', out])
  assert.is(status, 0)
  assert.equal(
    result.map((k: {file: string; fingerprint: string; userIds: string[]; private: boolean}) => [k.file, k.fingerprint, k.userIds, k.private]),
    [
      [a.private, a.fingerprint, ['a'], true],
      [a.public, a.fingerprint, ['a'], false],
      [b.private, b.fingerprint, ['b <b@example.org>'], true],
      [b.public, b.fingerprint, ['b <b@example.org>'], false],
    ],
  )
  const table = await ferry(['keys', 'list', out])
  assert.is(table.code, 0)
  const line = table.stdout.split('\n').find((l) => l.includes('b.pub.asc'))
  assert.ok(line?.includes(b.fingerprint) && line.includes('b <b@example.org>') && line.includes('public'), table.stdout)
})

test('keys list of a missing folder is exit 2 with the folder named', async () => {
  const {status, error} = await ferryJson(['keys', 'list', join(dir, 'absent')])
  assert.is(status, 2)
  assert.is(error.code, 'KEYS_DIR_NOT_FOUND')
  assert.ok(error.message.includes(join(dir, 'absent')))
})

test.run()
