// Proxies as curl reads them: the environment variables and NO_PROXY forms (unit), then a real
// tinyproxy with basic auth in front of a loopback file server and registries: forwarded http
// requests and CONNECT tunnels show in its log, NO_PROXY hosts do not, a 407 and an unreachable
// proxy are exit 5 naming the proxy without its password.
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import {parseNoProxy, proxyFor, proxySettings, redactProxy} from '../src/sources/net/proxy-env.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry} from './helpers/cli.js'
import {freePort, makeImages, registryDigest, skopeo, startRegistry, type Registry} from './helpers/registry.js'
import {startTinyproxy, type Tinyproxy} from './helpers/tinyproxy.js'

const unit = suite('proxy settings')
const at = (settings: ReturnType<typeof proxySettings>, url: string) => proxyFor(settings, new URL(url))?.host

unit('https_proxy for https, http_proxy for http, ALL_PROXY for either; lower case first; no scheme means http', () => {
  const s = proxySettings(undefined, {https_proxy: 'sec:3128', HTTPS_PROXY: 'upper:1', HTTP_PROXY: 'plain:8080'})
  assert.is(at(s, 'https://a.example/x'), 'sec:3128')
  assert.is(at(s, 'http://a.example/x'), 'plain:8080')
  assert.is(proxyFor(s, new URL('https://a.example'))?.protocol, 'http:')
  const all = proxySettings(undefined, {ALL_PROXY: 'http://every:3128', http_proxy: 'plain:8080'})
  assert.is(at(all, 'https://a.example/'), 'every:3128')
  assert.is(at(all, 'http://a.example/'), 'plain:8080')
  assert.is(at(proxySettings(undefined, {}), 'https://a.example/'), undefined)
})

unit('--proxy stands for every variable; NO_PROXY still applies', () => {
  const s = proxySettings('http://flag:3128', {https_proxy: 'env:1', NO_PROXY: 'internal.example'})
  assert.is(at(s, 'https://a.example/'), 'flag:3128')
  assert.is(at(s, 'http://a.example/'), 'flag:3128')
  assert.is(at(s, 'https://reg.internal.example/'), undefined)
})

unit('NO_PROXY: names and their subdomains (with or without a leading dot), IPs, ranges, host:port, *', () => {
  const s = proxySettings(undefined, {http_proxy: 'p:1', https_proxy: 'p:1', no_proxy: 'example.com, .corp.local,10.1.2.3,192.168.0.0/16,reg.site:5000,[::1]:8443,fd00::/8'})
  const direct = (url: string) => at(s, url) === undefined
  assert.ok(direct('https://example.com/'))
  assert.ok(direct('https://a.b.example.com/'))
  assert.not.ok(direct('https://notexample.com/'))
  assert.ok(direct('http://corp.local/'))
  assert.ok(direct('http://x.corp.local/'))
  assert.ok(direct('http://10.1.2.3:8080/'))
  assert.not.ok(direct('http://10.1.2.4/'))
  assert.ok(direct('http://192.168.44.5/'))
  assert.ok(direct('https://reg.site:5000/v2/'))
  assert.not.ok(direct('https://reg.site/v2/'))
  assert.ok(direct('https://[::1]:8443/'))
  assert.not.ok(direct('https://[::1]:9443/'))
  assert.ok(direct('https://[fd12::3]/'))
  assert.ok(direct('https://EXAMPLE.COM./'))
  assert.ok(at(proxySettings(undefined, {https_proxy: 'p:1', NO_PROXY: '*'}), 'https://any.where/') === undefined)
  assert.is(parseNoProxy(' , ').entries.length, 0)
})

unit('a proxy URL in messages has no password', () => {
  assert.is(redactProxy(new URL('http://ann:s3cret@proxy:3128')), 'http://ann:***@proxy:3128')
  assert.is(redactProxy(new URL('http://token@proxy:3128')), 'http://***@proxy:3128')
  assert.is(redactProxy(new URL('http://proxy:3128')), 'http://proxy:3128')
})

unit.run()

const ctx = {} as {dir: string; files: FileServer; plain: Registry; tls: Registry; proxy: Tinyproxy; key: string; pub: string; sha: string; n: number}
const test = suite('tinyproxy')
const PASSWORD = 's3cret-pw'
/** no proxy variable of the test's own environment leaks into a run */
const clean = {http_proxy: undefined, HTTP_PROXY: undefined, https_proxy: undefined, HTTPS_PROXY: undefined, all_proxy: undefined, ALL_PROXY: undefined, no_proxy: undefined, NO_PROXY: undefined}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-proxy-'))
  ctx.n = 0
  const up = join(ctx.dir, 'up')
  await mkdir(join(up, 'files'), {recursive: true})
  const tool = randomBytes(3 << 20)
  ctx.sha = createHash('sha256').update(tool).digest('hex')
  await writeFile(join(up, 'files', 'tool.bin'), tool)
  ctx.files = await startFileServer({root: up})
  makeImages(join(ctx.dir, 'layout'), 1, 1, 0.5, 0.2)
  ctx.plain = await startRegistry(join(ctx.dir, 'plain'))
  ctx.tls = await startRegistry(join(ctx.dir, 'tls'), {tls: true})
  await skopeo(['copy', '-q', '--dest-tls-verify=false', `oci:${join(ctx.dir, 'layout')}:img0`, `docker://${ctx.plain.host}/apps/img0:v1`])
  ctx.proxy = await startTinyproxy(ctx.dir, {user: 'ann', password: PASSWORD})
  const pair = await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))
  ctx.key = pair.private
  ctx.pub = pair.public
})

test.after(async () => {
  await ctx.proxy?.stop()
  await ctx.files?.close()
  await ctx.plain?.stop()
  await ctx.tls?.stop()
  await rm(ctx.dir, {recursive: true, force: true})
})

async function manifest(): Promise<string> {
  const dir = join(ctx.dir, `m${ctx.n++}`)
  await mkdir(dir)
  const path = join(dir, 'site.yaml')
  await writeFile(
    path,
    `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: proxied, version: 1.0.${ctx.n}}\nspec:\n  images: [${ctx.plain.host}/apps/img0:v1]\n  files:\n    - url: ${ctx.files.url}/files/tool.bin\n      sha256: ${ctx.sha}\n`,
  )
  return path
}

const build = (path: string, extra: string[], env: Record<string, string | undefined> = {}) =>
  ferry(['bundle', 'build', path, '--key', ctx.key, '--out', join(path, '..', 'out'), '--store', join(path, '..', 'store'), '--json', ...extra], {env: {...clean, ...env}})

const filePort = () => new URL(ctx.files.url).port

test('bundle build --proxy: files and registry requests go through the proxy, with its credentials', async () => {
  const r = await build(await manifest(), ['--proxy', ctx.proxy.url])
  assert.is(r.code, 0, r.stdout + r.stderr)
  const seen = await ctx.proxy.requests()
  assert.ok(seen.some((l) => l.startsWith(`GET ${ctx.files.url}/files/tool.bin`)), seen.join('\n'))
  assert.ok(seen.some((l) => l.startsWith(`GET http://${ctx.plain.host}/v2/apps/img0/blobs/sha256:`)), seen.join('\n'))
})

test('bundle push through HTTPS_PROXY opens a CONNECT tunnel to a TLS registry', async () => {
  const r = await build(await manifest(), [])
  assert.is(r.code, 0, r.stdout + r.stderr)
  const push = await ferry(['bundle', 'push', r.json!.result.path, `${ctx.tls.host}/edge`, '--key', ctx.pub, '--ca-file', ctx.tls.caFile!, '--json'], {
    env: {...clean, HTTPS_PROXY: ctx.proxy.url},
  })
  assert.is(push.code, 0, push.stdout + push.stderr)
  assert.ok((await ctx.proxy.requests()).includes(`CONNECT ${ctx.tls.host} HTTP/1.1`))
  assert.ok(await registryDigest(`${ctx.tls.host}/edge/apps/img0:v1`))
})

test('NO_PROXY: a host named there is reached directly, the others through the proxy', async () => {
  const before = (await ctx.proxy.requests()).length
  const r = await build(await manifest(), [], {http_proxy: ctx.proxy.url, NO_PROXY: `localhost,127.0.0.1:${filePort()}`})
  assert.is(r.code, 0, r.stdout + r.stderr)
  const seen = (await ctx.proxy.requests()).slice(before)
  assert.not.ok(seen.some((l) => l.includes(`:${filePort()}/`)), seen.join('\n'))
  assert.ok(seen.some((l) => l.includes(`http://${ctx.plain.host}/v2/`)), seen.join('\n'))
})

test('a proxy that refuses (no credentials, wrong ones, http and CONNECT) is exit 5 PROXY_AUTH naming it, password hidden', async () => {
  const bare = `http://${ctx.proxy.host}`
  const none = await ferry(['manifest', 'lock', await manifest(), '--proxy', bare, '--json'], {env: clean})
  assert.is(none.code, 5, none.stdout + none.stderr)
  assert.is(none.json!.error!.code, 'PROXY_AUTH')
  assert.match(none.json!.error!.message, bare)
  const wrong = `http://ann:not-${PASSWORD}@${ctx.proxy.host}`
  const bad = await ferry(['manifest', 'lock', await manifest(), '--proxy', wrong], {env: clean})
  assert.is(bad.code, 5, bad.stdout + bad.stderr)
  assert.ok(bad.stderr.includes(`http://ann:***@${ctx.proxy.host}`), bad.stderr)
  assert.match(bad.stderr, /40[17] /)
  assert.not.match(bad.stderr + bad.stdout, PASSWORD)
  assert.not.match(bad.stderr, /\n\s+at /)
  const built = await build(await manifest(), [])
  const refused = await ferry(['bundle', 'push', built.json!.result.path, `${ctx.tls.host}/edge`, '--key', ctx.pub, '--ca-file', ctx.tls.caFile!, '--json'], {env: {...clean, https_proxy: wrong}})
  assert.is(refused.code, 5, refused.stdout + refused.stderr)
  assert.is(refused.json!.error!.code, 'PROXY_AUTH')
  assert.not.match(refused.stdout + refused.stderr, PASSWORD)
})

test('an unreachable proxy is exit 5 PROXY_FAILED naming it, never a stack trace', async () => {
  const gone = `http://ann:${PASSWORD}@127.0.0.1:${await freePort()}`
  const r = await build(await manifest(), ['--proxy', gone])
  assert.is(r.code, 5, r.stdout + r.stderr)
  assert.is(r.json!.error!.code, 'PROXY_FAILED')
  assert.match(r.json!.error!.message, /cannot reach the proxy http:\/\/ann:\*\*\*@127\.0\.0\.1:\d+/)
  assert.not.match(r.stdout + r.stderr, PASSWORD)
  const text = await ferry(['manifest', 'lock', await manifest(), '--proxy', gone], {env: clean})
  assert.is(text.code, 5)
  assert.is(text.stderr.trim().split('\n').length, 1, text.stderr)
})

test.run()
