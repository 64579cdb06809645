// Resolving afresh on every run: through a proxy (the channel server and every upstream file), and
// `version: auto` staying above every release in the folder, even for runs within one minute.
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import semver from 'semver'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runRelease} from '../src/release/run.js'
import {BlobStore} from '../src/store/blob-store.js'
import {fileSigner} from '../src/trust/sign.js'
import {ferry} from './helpers/cli.js'
import {startTinyproxy} from './helpers/tinyproxy.js'
import {K3S_NEW, K3S_NEWER, K3S_OLD, makeReleaseUpstream, type ReleaseUpstream} from './helpers/release-upstream.js'

const test = suite('release-resolve')
const ctx = {} as {fx: ReleaseUpstream}

test.before(async () => {
  ctx.fx = await makeReleaseUpstream()
})

test.after(async () => {
  await ctx.fx.close()
  await rm(ctx.fx.root, {recursive: true, force: true})
})

test('release run --proxy: the channel server and every upstream file are reached through the proxy', async () => {
  const proxy = await startTinyproxy(ctx.fx.root)
  try {
    ctx.fx.move(K3S_NEW)
    const dir = join(ctx.fx.root, 'through-proxy')
    const noProxy = {http_proxy: undefined, HTTP_PROXY: undefined, https_proxy: undefined, HTTPS_PROXY: undefined, all_proxy: undefined, ALL_PROXY: undefined, no_proxy: undefined, NO_PROXY: undefined}
    const r = await ferry(['release', 'run', ctx.fx.manifest, '--key', ctx.fx.key, '--out', dir, '--store', join(ctx.fx.root, 'proxy-store'), '--proxy', proxy.url, '--json'], {env: noProxy})
    assert.is(r.code, 0, r.stderr + r.stdout)
    assert.is(r.json!.result.changed, true)
    const seen = (await proxy.requests()).join('\n')
    assert.match(seen, `GET ${ctx.fx.server.url}/channels/stable`)
    assert.match(seen, `${ctx.fx.server.url}/k3s/${encodeURIComponent(K3S_NEW)}/k3s`)
  } finally {
    await proxy.stop()
  }
})

test('version auto: two releases resolved in the same minute, and one after the clock went back, each get a version above every release', async () => {
  const dir = join(ctx.fx.root, 'same-minute')
  const common = {manifest: ctx.fx.manifest, dir, signers: [await fileSigner(ctx.fx.key)], store: new BlobStore(ctx.fx.store)}
  const now = new Date()
  ctx.fx.move(K3S_OLD)
  const a = await runRelease({...common, now})
  ctx.fx.move(K3S_NEW)
  const b = await runRelease({...common, now})
  ctx.fx.move(K3S_NEWER)
  const c = await runRelease({...common, now: new Date(now.getTime() - 30_000)})
  assert.ok([a, b, c].every((x) => x.changed))
  assert.is(b.version, semver.inc(a.version, 'patch'), `${b.version} right above ${a.version}`)
  assert.is(c.version, semver.inc(b.version, 'patch'), `${c.version} right above ${b.version}`)
  assert.equal((await ferry(['release', 'list', dir, '--json'])).json!.result.releases.map((x: {version: string}) => x.version), [a.version, b.version, c.version])
})

test.run()
