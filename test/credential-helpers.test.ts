// Credential helpers (`credHelpers`, `credsStore`) on real parts: a real `docker-credential-ferrytest`
// executable on PATH speaking docker's helper protocol, in front of a TLS registry with htpasswd auth.
import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {delimiter, join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {findCredentials} from '../src/sources/oci/credentials.js'
import {FerryError} from '../src/errors.js'
import {ferry} from './helpers/cli.js'
import {makeImages, skopeo, startProxy, startRegistry, type Proxy, type Registry} from './helpers/registry.js'

/** What the helper holds, per server address: credentials, or a failure to report. */
type HelperStore = Record<string, {user: string; secret: string} | {fail: string}>

/**
 * `docker-credential-ferrytest get`: reads the server address on stdin, logs it, and answers from
 * store.json as docker's helpers do (JSON on stdout; "credentials not found" and exit 1 otherwise).
 */
const HELPER = (dir: string) => `#!${process.execPath}
const fs = require('fs')
if (process.argv[2] !== 'get') { process.stderr.write('only get is implemented\\n'); process.exit(2) }
let input = ''
process.stdin.on('data', (d) => (input += d))
process.stdin.on('end', () => {
  const server = input.trim()
  fs.appendFileSync(${JSON.stringify(join(dir, 'asked.log'))}, server + '\\n')
  const entry = JSON.parse(fs.readFileSync(${JSON.stringify(join(dir, 'store.json'))}, 'utf8'))[server]
  if (!entry) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1) }
  if (entry.fail) { process.stderr.write(entry.fail + '\\n'); process.exit(1) }
  process.stdout.write(JSON.stringify({ServerURL: server, Username: entry.user, Secret: entry.secret}))
})
`

const ctx = {} as {dir: string; bin: string; path: string; secure: Registry; n: number}

async function installHelper(dir: string): Promise<void> {
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, 'docker-credential-ferrytest'), HELPER(dir))
  await chmod(join(dir, 'docker-credential-ferrytest'), 0o755)
  await writeFile(join(dir, 'store.json'), '{}')
}

const setStore = (store: HelperStore) => writeFile(join(ctx.bin, 'store.json'), JSON.stringify(store))
const asked = async () => (await readFile(join(ctx.bin, 'asked.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean)
const resetAsked = () => writeFile(join(ctx.bin, 'asked.log'), '')

/** Writes an auth file and returns its path. */
async function authFile(content: unknown): Promise<string> {
  const file = join(ctx.dir, `auth${++ctx.n}.json`)
  await writeFile(file, JSON.stringify(content))
  return file
}

// ---------------------------------------------------------------------------------------------
// End to end: `ferry manifest lock` against a TLS registry with htpasswd basic auth.

const cli = suite('credential-helpers: ferry against a registry with basic auth')

cli.before(async () => {
  ctx.n = 0
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-credhelper-'))
  ctx.bin = join(ctx.dir, 'bin')
  await installHelper(ctx.bin)
  ctx.path = `${ctx.bin}${delimiter}${process.env.PATH ?? ''}`
  const layout = join(ctx.dir, 'layout')
  makeImages(layout, 2, 1, 1, 0.1)
  ctx.secure = await startRegistry(join(ctx.dir, 'secure'), {user: 'ci', password: 'right', tls: true})
  for (const img of ['img0', 'img1']) {
    await skopeo(['copy', '-q', '--dest-creds', 'ci:right', '--dest-tls-verify=false', `oci:${layout}:${img}`, `docker://${ctx.secure.host}/apps/${img}:v1`])
  }
})

cli.after(async () => {
  await ctx.secure?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

/** `ferry manifest lock` of the two images with only `authFileContent` to find credentials in. */
async function lock(authFileContent: unknown) {
  const manifest = join(ctx.dir, `m${++ctx.n}.yaml`)
  await writeFile(
    manifest,
    `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: c${ctx.n}, version: 1.0.0}\nspec:\n  images: [${ctx.secure.host}/apps/img0:v1, ${ctx.secure.host}/apps/img1:v1]\n`,
  )
  const auth = await authFile(authFileContent)
  await resetAsked()
  const r = await ferry(['manifest', 'lock', manifest, '--out', join(ctx.dir, `m${ctx.n}.lock.json`), '--ca-file', ctx.secure.caFile!, '--json'], {
    env: {PATH: ctx.path, HOME: ctx.dir, REGISTRY_AUTH_FILE: auth, XDG_RUNTIME_DIR: undefined, DOCKER_CONFIG: undefined},
  })
  return {...r, auth}
}

cli('credHelpers names the helper for the registry: the lock succeeds, the helper asked once with the host', async () => {
  await setStore({[ctx.secure.host]: {user: 'ci', secret: 'right'}})
  const r = await lock({credHelpers: {[ctx.secure.host]: 'ferrytest'}})
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.is(r.json!.result.artifacts, 2)
  assert.equal(await asked(), [ctx.secure.host])
})

cli('credsStore is the default helper, behind an empty inline entry as docker writes it', async () => {
  await setStore({[ctx.secure.host]: {user: 'ci', secret: 'right'}})
  const r = await lock({auths: {[ctx.secure.host]: {}}, credsStore: 'ferrytest'})
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.equal(await asked(), [ctx.secure.host])
})

cli('a helper answering a wrong password: exit 5 with the registry reason, naming the helper and the file', async () => {
  await setStore({[ctx.secure.host]: {user: 'ci', secret: 'wrong'}})
  const r = await lock({credHelpers: {[ctx.secure.host]: 'ferrytest'}})
  assert.is(r.code, 5, r.stdout)
  assert.is(r.json!.error!.code, 'AUTH_FAILED')
  assert.match(r.json!.error!.message, /UNAUTHORIZED|authentication required/)
  assert.ok(r.json!.error!.message.includes(`docker-credential-ferrytest, named in ${r.auth}`), r.json!.error!.message)
})

cli('a helper named but not installed: exit 2 naming docker-credential-NAME and the file', async () => {
  const r = await lock({credHelpers: {[ctx.secure.host]: 'notinstalled'}})
  assert.is(r.code, 2, r.stdout)
  assert.is(r.json!.error!.code, 'CREDENTIAL_HELPER_MISSING')
  assert.ok(r.json!.error!.message.includes('docker-credential-notinstalled'), r.json!.error!.message)
  assert.ok(r.json!.error!.message.includes(r.auth), r.json!.error!.message)
  assert.match(r.json!.error!.message, /not on PATH/)
})

cli('an identity token for a registry that asks for a password: exit 5 saying so', async () => {
  const r = await lock({auths: {[ctx.secure.host]: {identitytoken: 'refresh'}}})
  assert.is(r.code, 5, r.stdout)
  assert.is(r.json!.error!.code, 'AUTH_REQUIRED')
  assert.match(r.json!.error!.message, /identity token/)
})

cli('a helper that holds nothing for the registry means anonymous: exit 5, credentials required', async () => {
  await setStore({})
  const r = await lock({credHelpers: {[ctx.secure.host]: 'ferrytest'}})
  assert.is(r.code, 5, r.stdout)
  assert.is(r.json!.error!.code, 'AUTH_REQUIRED')
  assert.equal(await asked(), [ctx.secure.host])
})

cli.run()

// ---------------------------------------------------------------------------------------------
// Which source wins, called directly (each case uses its own registry name: answers are kept per run).

const order = suite('credential-helpers: precedence in findCredentials')

const failure = async (p: Promise<unknown>): Promise<FerryError> => {
  try {
    await p
  } catch (err) {
    assert.instance(err, FerryError)
    return err as FerryError
  }
  throw new Error('expected a failure')
}

order.before(async () => {
  ctx.n = 0
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-credorder-'))
  ctx.bin = join(ctx.dir, 'bin')
  await installHelper(ctx.bin)
  process.env.PATH = `${ctx.bin}${delimiter}${process.env.PATH ?? ''}`
})

order.after(() => rm(ctx.dir, {recursive: true, force: true}))

const basic = (user: string, password: string) => ({auth: Buffer.from(`${user}:${password}`).toString('base64')})

order('credHelpers beats an inline entry of the same file', async () => {
  await setStore({'one.test': {user: 'helper', secret: 'h'}})
  const file = await authFile({auths: {'one.test': basic('inline', 'i')}, credHelpers: {'one.test': 'ferrytest'}})
  const c = await findCredentials('one.test', 'app', [file])
  assert.equal(c, {username: 'helper', password: 'h', from: `docker-credential-ferrytest, named in ${file}`})
})

order('an inline entry beats credsStore; an empty one falls through to it', async () => {
  await setStore({'two.test': {user: 'store', secret: 's'}})
  const inline = await authFile({auths: {'two.test': basic('inline', 'i')}, credsStore: 'ferrytest'})
  assert.equal(await findCredentials('two.test', 'app', [inline]), {username: 'inline', password: 'i', from: inline})
  const empty = await authFile({auths: {'two.test': {}}, credsStore: 'ferrytest'})
  assert.is((await findCredentials('two.test', 'app', [empty]))?.username, 'store')
})

order('a helper holding nothing falls through to the inline entry, then to the next file', async () => {
  await setStore({})
  const first = await authFile({auths: {'three.test': basic('inline', 'i')}, credHelpers: {'three.test': 'ferrytest'}})
  assert.is((await findCredentials('three.test', 'app', [first]))?.username, 'inline')
  const helperOnly = await authFile({credHelpers: {'four.test': 'ferrytest'}, credsStore: 'ferrytest'})
  const next = await authFile({auths: {'four.test': basic('next', 'n')}})
  assert.equal(await findCredentials('four.test', 'app', [helperOnly, next]), {username: 'next', password: 'n', from: next})
})

order('a credHelpers entry for another registry is not used', async () => {
  await setStore({'five.test': {user: 'helper', secret: 'h'}})
  const file = await authFile({credHelpers: {'other.test': 'ferrytest'}})
  assert.is(await findCredentials('five.test', 'app', [file]), undefined)
})

order('Docker Hub: the helper is asked for https://index.docker.io/v1/, whichever way the key is spelled', async () => {
  await setStore({'https://index.docker.io/v1/': {user: 'hub', secret: 'h'}})
  await resetAsked()
  const file = await authFile({credHelpers: {'https://index.docker.io/v1/': 'ferrytest'}})
  assert.is((await findCredentials('docker.io', 'library/nginx', [file]))?.username, 'hub')
  assert.equal(await asked(), ['https://index.docker.io/v1/'])
  const short = await authFile({credHelpers: {'docker.io': 'nosuchhelper'}})
  const e = await failure(findCredentials('docker.io', 'library/nginx', [short]))
  assert.is(e.code, 'CREDENTIAL_HELPER_MISSING')
})

order('a helper that fails otherwise: exit 5 with what it said', async () => {
  await setStore({'six.test': {fail: 'gpg: decryption failed: No secret key'}})
  const file = await authFile({credHelpers: {'six.test': 'ferrytest'}})
  const e = await failure(findCredentials('six.test', 'app', [file]))
  assert.is(e.exit, 5)
  assert.is(e.code, 'CREDENTIAL_HELPER_FAILED')
  assert.match(e.message, /docker-credential-ferrytest failed: gpg: decryption failed: No secret key/)
})

order('an identity token (user <token> from a helper, or an inline identitytoken) is read as one', async () => {
  await setStore({'seven.test': {user: '<token>', secret: 'refresh-7'}})
  const helper = await authFile({credHelpers: {'seven.test': 'ferrytest'}})
  const fromHelper = await findCredentials('seven.test', 'app', [helper])
  assert.is(fromHelper?.identityToken, 'refresh-7')
  const inline = await authFile({auths: {'eight.test': {auth: Buffer.from('00000000-0000-0000-0000-000000000000:').toString('base64'), identitytoken: 'refresh-8'}}})
  assert.is((await findCredentials('eight.test', 'app', [inline]))?.identityToken, 'refresh-8')
})

order('a credHelpers value that is not a name is a usage error naming the file', async () => {
  const file = await authFile({credHelpers: {'nine.test': 42}})
  const e = await failure(findCredentials('nine.test', 'app', [file]))
  assert.is(e.exit, 2)
  assert.is(e.code, 'BAD_AUTH_FILE')
  assert.ok(e.message.includes(file), e.message)
})

order.run()

// ---------------------------------------------------------------------------------------------
// Identity tokens: traded at an OAuth2 token service (refresh-token grant), as ACR and Hub do.

const oauth = suite('credential-helpers: identity tokens at an OAuth2 token service')
const octx = {} as {dir: string; registry: Registry; proxy: Proxy}

oauth.before(async () => {
  octx.dir = await mkdtemp(join(tmpdir(), 'ferry-oauth-'))
  ctx.bin = join(octx.dir, 'bin')
  await installHelper(ctx.bin)
  ctx.path = `${ctx.bin}${delimiter}${process.env.PATH ?? ''}`
  makeImages(join(octx.dir, 'layout'), 1, 1, 0.2, 0.1)
  octx.registry = await startRegistry(join(octx.dir, 'registry'))
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${join(octx.dir, 'layout')}:img0`, `docker://${octx.registry.host}/apps/img0:v1`])
  octx.proxy = await startProxy(octx.registry.host, {bearer: {user: 'ci', password: 'pw', refreshToken: 'rt-good'}})
})

oauth.after(async () => {
  await octx.proxy?.close()
  await octx.registry?.stop()
  await rm(octx.dir, {recursive: true, force: true})
})

async function lockVia(auth: unknown) {
  const n = ++ctx.n
  const manifest = join(octx.dir, `m${n}.yaml`)
  await writeFile(manifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: o${n}, version: 1.0.0}\nspec:\n  images: [${octx.proxy.host}/apps/img0:v1]\n`)
  const file = join(octx.dir, `auth${n}.json`)
  await writeFile(file, JSON.stringify(auth))
  octx.proxy.seen.length = 0
  return ferry(['manifest', 'lock', manifest, '--out', join(octx.dir, `m${n}.lock.json`), '--json'], {
    env: {PATH: ctx.path, HOME: octx.dir, REGISTRY_AUTH_FILE: file, XDG_RUNTIME_DIR: undefined, DOCKER_CONFIG: undefined},
  })
}

oauth('an inline identitytoken is traded for an access token with a refresh-token grant', async () => {
  const r = await lockVia({auths: {[octx.proxy.host]: {auth: Buffer.from('00000000-0000-0000-0000-000000000000:').toString('base64'), identitytoken: 'rt-good'}}})
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.ok(octx.proxy.seen.includes('POST /token'), octx.proxy.seen.join('\n'))
  assert.not.ok(octx.proxy.seen.some((l) => l.startsWith('GET /token')), 'no basic-auth token request')
})

oauth('a helper answering user <token> works the same way', async () => {
  await setStore({[octx.proxy.host]: {user: '<token>', secret: 'rt-good'}})
  const r = await lockVia({credHelpers: {[octx.proxy.host]: 'ferrytest'}})
  assert.is(r.code, 0, r.stdout + r.stderr)
  assert.ok(octx.proxy.seen.includes('POST /token'))
})

oauth('a refused identity token: exit 5 naming it and the token service reason', async () => {
  const r = await lockVia({auths: {[octx.proxy.host]: {identitytoken: 'rt-expired'}}})
  assert.is(r.code, 5, r.stdout)
  assert.is(r.json!.error!.code, 'AUTH_FAILED')
  assert.match(r.json!.error!.message, /identity token from .*auth\d+\.json.*invalid refresh token/)
})

oauth.run()
