// sha256 on worker threads, the blob writer that feeds them, and a build that meets a store blob damaged
// on disk (the store is a cache without a flush per blob): the damage is caught, the blob fetched again.
import {createHash, randomBytes} from 'node:crypto'
import {chmod, mkdir, mkdtemp, open, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {buildBundle} from '../src/bundle/build.js'
import {writeBundleArchive} from '../src/bundle/write.js'
import {startFileServer, type FileServer} from '../src/demo/file-server.js'
import type {LockFile} from '../src/manifest/lock-format.js'
import {BlobStore} from '../src/store/blob-store.js'
import {remoteHash, takeSlab} from '../src/store/hash-pool.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {fileSigner} from '../src/trust/sign.js'
import {FerryError} from '../src/errors.js'

const ctx = {} as {dir: string; server: FileServer; lock: LockFile; data: Buffer[]; priv: string}
const test = suite('hashing workers')
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex')

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-hashw-'))
  await mkdir(join(ctx.dir, 'www'))
  // the last one is below the size that goes straight into a bundle: it stays a loose store file
  ctx.data = [randomBytes(3 << 20), randomBytes(700_001), randomBytes(1), randomBytes(200_003)]
  for (const [i, d] of ctx.data.entries()) await writeFile(join(ctx.dir, 'www', `f${i}.bin`), d)
  ctx.server = await startFileServer({root: join(ctx.dir, 'www')})
  const now = Date.now()
  ctx.lock = {
    schema: 'ferry.lock/v1',
    name: 'hashw',
    version: '1.0.0',
    resolved: new Date(now - 3600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    expires: new Date(now + 86400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    platforms: ['linux/amd64'],
    health: [],
    artifacts: ctx.data.map((d, i) => ({
      name: `f${i}.bin`,
      kind: 'file' as const,
      url: `${ctx.server.url}/f${i}.bin`,
      sha256: sha(d).slice(7),
      size: d.length,
      mediaType: 'application/octet-stream',
      upstream: {verifiedBy: 'sha256' as const},
    })),
  }
  const pair = await writeKeyPair(join(ctx.dir, 'keys'), 'k', await generateKeyPair({name: 'k', date: new Date(now - 7200_000)}))
  ctx.priv = pair.private
})

test.after(async () => {
  await ctx.server?.close()
  await rm(ctx.dir, {recursive: true, force: true})
})

test('a hash on a worker equals node:crypto over the same bytes, several at once', async () => {
  const inputs = [randomBytes(5 << 20), randomBytes(12345), Buffer.alloc(0)]
  const digests = await Promise.all(
    inputs.map(async (input) => {
      const h = remoteHash()
      const slab = takeSlab(1 << 20)
      for (let at = 0; at < input.length; at += slab.length) {
        const n = input.copy(slab, 0, at, Math.min(input.length, at + slab.length))
        await h.update(slab.subarray(0, n))
      }
      return h.digest()
    }),
  )
  assert.equal(digests, inputs.map(sha))
})

test('a hash on a worker refuses memory the worker cannot share', () => {
  assert.throws(() => remoteHash().update(Buffer.from('x')), /SharedArrayBuffer/)
})

test('a worker hashes and writes a slab at its place, and reads a file range back into a hash; a refused write keeps its errno', async () => {
  const file = join(ctx.dir, 'hw.bin')
  const bytes = randomBytes((1 << 20) + 12_345)
  const slab = takeSlab(bytes.length)
  bytes.copy(slab)
  const out = await open(file, 'w+')
  try {
    const hash = remoteHash()
    // two halves, written out of order at their offsets after a 100-byte gap
    const half = 600_000
    await Promise.all([hash.updateAndWrite(slab.subarray(0, half), out.fd, 100), hash.updateAndWrite(slab.subarray(half), out.fd, 100 + half)])
    assert.is(await hash.digest(), sha(bytes))
    assert.ok((await readFile(file)).subarray(100).equals(bytes))
    const back = remoteHash()
    await back.updateFromFile(out.fd, 100, bytes.length)
    assert.is(await back.digest(), sha(bytes))
    const short = remoteHash()
    try {
      await short.updateFromFile(out.fd, 100, bytes.length + 1)
      assert.unreachable('a range past the end of the file was hashed')
    } catch (err) {
      assert.match((err as Error).message, /ends 1 bytes early/)
    }
  } finally {
    await out.close()
  }
  const readOnly = await open(file, 'r')
  try {
    await remoteHash().updateAndWrite(slab.subarray(0, 10), readOnly.fd, 0)
    assert.unreachable('a write to a read-only file succeeded')
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'EBADF')
  } finally {
    await readOnly.close()
  }
})

test('the blob writer copies chunks in: a producer reusing its buffer does not change what is stored', async () => {
  const store = new BlobStore(join(ctx.dir, 'reuse'))
  const data = randomBytes(2 << 20)
  async function* reused() {
    const buffer = Buffer.alloc(100_000)
    for (let at = 0; at < data.length; at += buffer.length) {
      const n = data.copy(buffer, 0, at)
      yield buffer.subarray(0, n)
      buffer.fill(0xee)
    }
  }
  const got = await store.ingest(reused(), {digest: sha(data), size: data.length})
  assert.is(got.digest, sha(data))
  assert.ok((await readFile(store.pathOf(got.digest))).equals(data))
})

test('a blob not checked in this process is hashed on its way into the archive; a damaged one is refused', async () => {
  const store = new BlobStore(join(ctx.dir, 'damaged'))
  const good = ctx.data[1]
  await store.ingest(Readable.from([good]), {digest: sha(good), size: good.length})
  const damaged = Buffer.from(good)
  damaged[damaged.length >> 1] ^= 1
  await writeFile(store.pathOf(sha(good)), damaged)
  const target = join(ctx.dir, 'out-damaged', 'x.ferry.tar')
  const entries = {bundleJson: Buffer.from('{}\n'), signature: Buffer.from('sig'), indexJson: Buffer.from('{}\n')}
  const blobs = [{digest: sha(good), size: good.length, path: store.pathOf(sha(good))}]
  const err = await writeBundleArchive(target, {...entries, blobs}).catch((e: unknown) => e)
  assert.instance(err, FerryError)
  assert.is((err as FerryError).code, 'STORE_CORRUPT')
  assert.is((err as FerryError).exit, 3)
  await stat(target).then(
    () => assert.unreachable('no archive may be left'),
    () => undefined,
  )
})

test('a build finds a cached blob damaged on disk, fetches it again and writes the same bundle', async () => {
  const root = join(ctx.dir, 'rebuild')
  const signers = [await fileSigner(ctx.priv)]
  const first = await buildBundle(ctx.lock, {store: new BlobStore(root), signers, outDir: join(root, 'out1')})
  assert.ok(first.fetched > 0)
  // Once the bundle is written, the loose blobs it used are flushed and sealed (read-only).
  const victim = ctx.data[3]
  const store = new BlobStore(root)
  assert.is((await stat(store.pathOf(sha(victim)))).mode & 0o777, 0o444)
  assert.is(await store.trusted(sha(victim)), true)
  // What a power cut before the seal can leave of a blob never flushed: unsealed, the right size, the wrong bytes.
  await chmod(store.pathOf(sha(victim)), 0o644)
  await writeFile(store.pathOf(sha(victim)), Buffer.alloc(victim.length))
  assert.is(await store.trusted(sha(victim)), false)
  // No other copy to fall back on: the store holds the blob only as its own file.
  await rm(join(root, 'packs'), {recursive: true})
  await mkdir(join(root, 'packs'))
  const second = await buildBundle(ctx.lock, {store, signers, outDir: join(root, 'out2')})
  assert.is(second.fetched, victim.length)
  assert.is(second.sha256, first.sha256)
  assert.ok((await readFile(store.pathOf(sha(victim)))).equals(victim))
  const untouched = await buildBundle(ctx.lock, {store: new BlobStore(root), signers, outDir: join(root, 'out3')})
  assert.is(untouched.fetched, 0)
  assert.is(untouched.sha256, first.sha256)
})

test('a bundle written next to the store is kept as a pack: it stands in for a damaged blob, and is dropped once edited', async () => {
  const root = join(ctx.dir, 'packs')
  const signers = [await fileSigner(ctx.priv)]
  const first = await buildBundle(ctx.lock, {store: new BlobStore(root), signers, outDir: join(root, 'out1')})
  const pack = join(root, 'packs', `${first.sha256}.tar`)
  assert.is((await stat(pack)).ino, (await stat(first.path)).ino, 'the pack is a hard link to the bundle')
  // the large files went straight into the bundle: the store has them in the pack only
  await stat(new BlobStore(root).pathOf(sha(ctx.data[0]))).then(
    () => assert.unreachable('a file downloaded into the bundle was also kept loose'),
    () => undefined,
  )
  const victim = ctx.data[3]
  const store = new BlobStore(root)
  await chmod(store.pathOf(sha(victim)), 0o644)
  await writeFile(store.pathOf(sha(victim)), Buffer.alloc(victim.length))
  const second = await buildBundle(ctx.lock, {store, signers, outDir: join(root, 'out2')})
  assert.is(second.fetched, 0, 'the damaged file is replaced by the copy in the pack')
  assert.is(second.sha256, first.sha256)
  // The bundle is edited in place (the pack is the same file): the pack is no longer trusted,
  // its bytes are hashed on the way, the damage is found, the pack dropped and the blob fetched.
  const index = JSON.parse(await readFile(join(root, 'packs', `${second.sha256}.json`), 'utf8'))
  const [offset] = index.blobs[sha(victim)] as [number, number]
  await rm(store.pathOf(sha(victim)), {force: true})
  // later than the file system's timestamp tick, as any real edit is
  await sleep(50)
  const handle = await open(second.path, 'r+')
  await handle.write(Buffer.from([0x55]), 0, 1, offset + 10)
  await handle.close()
  const third = await buildBundle(ctx.lock, {store: new BlobStore(root), signers, outDir: join(root, 'out3')})
  // the victim, and the large files the dropped pack was the only copy of
  assert.is(third.fetched, victim.length + ctx.data[0].length + ctx.data[1].length)
  assert.is(third.sha256, first.sha256)
})

test('files go straight into the bundle, except very large ones: those go through the store, where a cut download is kept', async () => {
  const root = join(ctx.dir, 'direct-files')
  const signers = [await fileSigner(ctx.priv)]
  // 1 MiB stands in for the 1 GiB a real VM image is above
  const built = await buildBundle(ctx.lock, {store: new BlobStore(root), signers, outDir: join(root, 'out'), directFilesBelow: 1 << 20})
  assert.is(built.fetched, ctx.data.reduce((n, d) => n + d.length, 0))
  const store = new BlobStore(root)
  const loose = async (d: Buffer) => stat(store.pathOf(sha(d))).then(() => true, () => false)
  assert.is(await loose(ctx.data[0]), true, 'the large file went through the store')
  assert.is(await loose(ctx.data[1]), false, 'a file below the limit was kept loose as well')
  assert.is((await store.locate(sha(ctx.data[1])))?.path, join(root, 'packs', `${built.sha256}.tar`))
})

test('a pack another build replaces while this one runs: the blobs are looked for again, not lost', async () => {
  const root = join(ctx.dir, 'moved')
  const signers = [await fileSigner(ctx.priv)]
  const first = await buildBundle(ctx.lock, {store: new BlobStore(root), signers, outDir: join(root, 'out1')})
  // the store holds the blobs only in the pack
  await rm(join(root, 'blobs', 'sha256'), {recursive: true})
  await mkdir(join(root, 'blobs', 'sha256'))
  const store = new BlobStore(root)
  const located = await store.locate(sha(ctx.data[0]))
  assert.is(located?.path, join(root, 'packs', `${first.sha256}.tar`))
  // meanwhile another build replaces that pack by one of its own holding the same blobs
  const other = 'f'.repeat(64)
  await rename(join(root, 'packs', `${first.sha256}.tar`), join(root, 'packs', `${other}.tar`))
  await rename(join(root, 'packs', `${first.sha256}.json`), join(root, 'packs', `${other}.json`))
  // signed by another key, so not the stored bundle itself: its blobs are copied out of the pack
  const otherKey = await writeKeyPair(join(root, 'keys'), 'o', await generateKeyPair({name: 'o', date: new Date(Date.now() - 7200_000)}))
  const second = await buildBundle(ctx.lock, {store, signers: [await fileSigner(otherKey.private)], outDir: join(root, 'out2')})
  assert.is(second.fetched, 0)
  assert.is(second.reused, undefined)
  assert.is(createHash('sha256').update(await readFile(second.path)).digest('hex'), second.sha256)
})

test.run()
