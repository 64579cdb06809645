// What people read in the output: versions in manifest lock, bundle inspect and bundle diff (a tag
// change is one image changed, old → new, in diff and in the release changelog alike), an image's
// size in the lock is the image's, progress rates that are measured, and paths under --root as the
// user wrote them. Real bundles built from generated OCI layouts, through the ferry binary.
import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {ferry, REPO} from './helpers/cli.js'
import {makeImages} from './helpers/registry.js'

const exec = promisify(execFile)
const ctx = {} as {dir: string; priv: string; pub: string; a: string; b: string}
const test = suite('output')

/** Renames the images of an OCI layout: {img0: 'app:1.0'} makes img0 the image docker.io/library/app:1.0. */
async function retag(layout: string, names: Record<string, string>): Promise<void> {
  const path = join(layout, 'index.json')
  const index = JSON.parse(await readFile(path, 'utf8'))
  for (const m of index.manifests) {
    const name = m.annotations?.['org.opencontainers.image.ref.name']
    if (names[name]) m.annotations['org.opencontainers.image.ref.name'] = names[name]
  }
  await writeFile(path, JSON.stringify(index))
}

function manifest(version: string, images: string[]): string {
  return `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: site, version: ${version}}\nspec:\n  images: [${images.join(', ')}]\n`
}

async function build(version: string, images: string[]): Promise<string> {
  const m = join(ctx.dir, `${version}.yaml`)
  await writeFile(m, manifest(version, images))
  const r = await ferry(['bundle', 'build', m, '--key', ctx.priv, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(r.code, 0, r.stdout + r.stderr)
  return r.json!.result.path
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-output-'))
  // one: app 1.0 and a base image; two: app rebuilt as 1.1, the same base image
  makeImages(join(ctx.dir, 'one'), 2, 1, 0.5, 0.2)
  makeImages(join(ctx.dir, 'two'), 1, 1, 0.5, 0.2)
  await retag(join(ctx.dir, 'one'), {img0: 'app:1.0', img1: 'base:7'})
  await retag(join(ctx.dir, 'two'), {img0: 'app:1.1'})
  const keys = await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 't', date: new Date(Date.now() - 60_000)}))
  ctx.priv = keys.private
  ctx.pub = keys.public
  ctx.a = await build('1.0.0', ['oci:one:app:1.0', 'oci:one:base:7'])
  ctx.b = await build('1.1.0', ['oci:two:app:1.1', 'oci:one:base:7'])
})

test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('bundle diff: a new tag of the same image is one change, old → new version, not a removal and an addition', async () => {
  const r = await ferry(['bundle', 'diff', ctx.a, ctx.b, '--json'])
  assert.is(r.code, 0, r.stderr)
  const images = r.json!.result.images
  assert.equal(images.added, [])
  assert.equal(images.removed, [])
  assert.is(images.changed.length, 1, JSON.stringify(images))
  const c = images.changed[0]
  assert.is(c.name, 'docker.io/library/app:1.1')
  assert.is(c.previous, 'docker.io/library/app:1.0')
  assert.is(c.fromVersion, '1.0')
  assert.is(c.toVersion, '1.1')
  assert.ok(c.from !== c.to)
  const human = await ferry(['bundle', 'diff', ctx.a, ctx.b])
  assert.match(human.stdout, /~ docker\.io\/library\/app {2}1\.0 → 1\.1 {2}sha256:[0-9a-f]{12} → sha256:[0-9a-f]{12}/)
  assert.not.match(human.stdout, /^\s+[+-] /m)
})

test('bundle inspect has a version column: an image by its tag, with the version in --json', async () => {
  const r = await ferry(['bundle', 'inspect', ctx.b])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /reference\s+version\s+manifest digest/)
  assert.match(r.stdout, /docker\.io\/library\/app:1\.1\s+1\.1\s+sha256:/)
  assert.match(r.stdout, /docker\.io\/library\/base:7\s+7\s+sha256:/)
  const json = await ferry(['bundle', 'inspect', ctx.b, '--json'])
  assert.equal(json.json!.result.images.map((i: {version: string}) => i.version).sort(), ['1.1', '7'])
})

test('manifest lock shows each image with its version and its size: all its blobs, not its manifest', async () => {
  const m = join(ctx.dir, 'lock.yaml')
  await writeFile(m, manifest('1.0.0', ['oci:one:app:1.0']))
  const r = await ferry(['manifest', 'lock', m, '--store', join(ctx.dir, 'store')])
  assert.is(r.code, 0, r.stderr)
  const lock = JSON.parse(await readFile(join(ctx.dir, 'lock.lock.json'), 'utf8'))
  const app = lock.artifacts[0]
  assert.ok(app.imageSize > 500_000 && app.size < 2_000, `${app.size} ${app.imageSize}`)
  const line = r.stdout.split('\n').find((l) => l.includes('images/docker.io/library/app:1.0')) ?? ''
  assert.match(line, /\s1\.0\s/)
  // the image's bytes (hundreds of KiB), not its manifest's few hundred bytes
  assert.match(line, /\s\d+(\.\d)? (KiB|MiB)\s/, line)
  assert.not.match(line, /\s\d+ B\s/, line)
  const json = await ferry(['manifest', 'lock', m, '--store', join(ctx.dir, 'store'), '--json'])
  assert.is(json.json!.result.bytes, app.imageSize)
})

test('the release changelog: a new tag of an image is changed, old → new, as in bundle diff', async () => {
  const m = join(ctx.dir, 'release.yaml')
  const out = join(ctx.dir, 'releases')
  const write = (images: string[]) => writeFile(m, manifest('auto', images))
  const run = () => ferry(['release', 'run', m, '--key', ctx.priv, '--out', out, '--store', join(ctx.dir, 'store'), '--json'])
  await write(['oci:one:app:1.0', 'oci:one:base:7'])
  const first = await run()
  assert.is(first.code, 0, first.stdout + first.stderr)
  await write(['oci:two:app:1.1', 'oci:one:base:7'])
  const second = await run()
  assert.is(second.code, 0, second.stdout + second.stderr)
  const changes = JSON.parse(await readFile(second.json!.result.changelog.json, 'utf8'))
  assert.equal(
    changes.artifacts.map((a: {change: string; name: string}) => [a.change, a.name]),
    [['changed', 'images/docker.io/library/app:1.1']],
  )
  assert.is(changes.artifacts[0].old.version, '1.0')
  assert.is(changes.artifacts[0].new.version, '1.1')
  assert.is(changes.artifacts[0].old.ref, 'docker.io/library/app:1.0')
  assert.is(changes.unchanged, 1)
  const md = await readFile(second.json!.result.changelog.md, 'utf8')
  assert.match(md, /## Changed\n\n- images\/docker\.io\/library\/app:1\.1 \(image\): 1\.0 docker\.io\/library\/app:1\.0 → 1\.1 docker\.io\/library\/app:1\.1;/)
  assert.not.match(md, /## Added|## Removed/)
})

test('on a terminal, every phase shows a rate it measured: none beyond what hashing allows, resolve counts images', async () => {
  // big enough for several write events (one every 8 MiB)
  makeImages(join(ctx.dir, 'big'), 2, 2, 10, 5)
  const m = join(ctx.dir, 'tty.yaml')
  await writeFile(m, manifest('3.0.0', ['oci:big:img0', 'oci:big:img1']))
  const cmd = `stty cols 200 rows 40; ${join(REPO, 'bin', 'run.js')} bundle build ${m} --key ${ctx.priv} --out ${join(ctx.dir, 'tty-out')} --store ${join(ctx.dir, 'tty-store')}`
  const {stdout} = await exec('script', ['-qec', cmd, '/dev/null'], {cwd: REPO, env: {...process.env, NO_COLOR: '1', FORCE_COLOR: '0'}})
  const text = stdout.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replace(/\r/g, '\n')
  assert.match(text, /built .*site-3\.0\.0\.ferry\.tar/)
  const unit = {B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4} as Record<string, number>
  const rates = [...text.matchAll(/(\w[\w -]*?)(?: \S+)?: [^,\n]*, ([\d.]+) (B|KiB|MiB|GiB|TiB)\/s/g)].map((x) => ({phase: x[1], rate: Number(x[2]) * unit[x[3]]}))
  // a write hashes every byte as it goes: several GiB/s is a phase timed from its last event
  for (const r of rates) assert.ok(r.rate < 2 * 1024 ** 3, `${r.phase}: ${r.rate} B/s in\n${text}`)
  assert.match(text, /resolve \S+: \d \/ 2 images/)
  assert.not.match(text, /resolve [^\n]*B\/s/)
})

test('which digest is which: build and usb verify name the file\'s sha256, verify names bundle.json\'s digest', async () => {
  // built again (the same content replaces the file), as a person reads it
  const m = join(ctx.dir, '1.0.0.yaml')
  const built = await ferry(['bundle', 'build', m, '--key', ctx.priv, '--out', join(ctx.dir, 'out'), '--store', join(ctx.dir, 'store')])
  assert.is(built.code, 0, built.stderr)
  const file = createHash('sha256').update(await readFile(ctx.a)).digest('hex')
  assert.match(built.stdout, `sha256 of the file ${file} (as sha256sum prints it)`)
  const verify = await ferry(['bundle', 'verify', ctx.a, '--key', ctx.pub])
  const json = await ferry(['bundle', 'verify', ctx.a, '--key', ctx.pub, '--json'])
  assert.is(verify.code, 0, verify.stderr)
  const digest = json.json!.result.digest
  assert.ok(digest !== `sha256:${file}`)
  assert.match(verify.stdout, `bundle.json digest ${digest} (names this release in deltas and on devices; not the file's sha256)`)
  const stick = join(ctx.dir, 'stick')
  await mkdir(stick)
  assert.is((await ferry(['usb', 'write', ctx.a, stick])).code, 0)
  const usb = await ferry(['usb', 'verify', stick])
  assert.is(usb.code, 0, usb.stderr)
  assert.match(usb.stdout, `sha256 of the bundle file ${file}`)
  const inspect = await ferry(['bundle', 'inspect', ctx.a])
  assert.match(inspect.stdout, /manifest digest/)
})

test('paths under --root are shown as written: ./sandbox/ stays ./sandbox/, also for the k3s images folder', async () => {
  const cwd = join(ctx.dir, 'site')
  await mkdir(join(cwd, 'sandbox', 'etc', 'ferry'), {recursive: true})
  const empty = await ferry(['device', 'status', '--root', './sandbox/'], {cwd})
  assert.is(empty.code, 2)
  assert.match(empty.stderr, '(no ./sandbox/var/lib/ferry)')
  await writeFile(join(cwd, 'sandbox', 'etc', 'ferry', 'device.yaml'), 'k3s: {imagesDir: /var/lib/rancher/k3s/agent/images}\n')
  for (const args of [['device', 'trust', 'add', ctx.pub], ['device', 'import', ctx.a]]) {
    const r = await ferry([...args, '--root', './sandbox/'], {cwd})
    assert.is(r.code, 0, r.stderr)
  }
  const apply = await ferry(['device', 'apply', '--root', './sandbox/'], {cwd})
  assert.is(apply.code, 0, apply.stderr)
  assert.match(apply.stdout, 'image archive(s) in ./sandbox/var/lib/rancher/k3s/agent/images')
})

test.run()
