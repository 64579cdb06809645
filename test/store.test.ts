import {execFile, spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {promisify} from 'node:util'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {BlobStore} from '../src/store/blob-store.js'
import {Packs} from '../src/store/packs.js'
import {HashingStream, sha256File, toDigest} from '../src/store/hashing.js'
import {CompareReadError, compareFiles} from '../src/store/pump.js'
import {FerryError} from '../src/errors.js'

const run = promisify(execFile)
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** Yields `data` in chunks of `size` bytes, as a network or file source would. */
async function* chunked(data: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

async function rejects(promise: Promise<unknown>): Promise<FerryError> {
  try {
    await promise
  } catch (err) {
    assert.instance(err, FerryError)
    return err as FerryError
  }
  throw new assert.Assertion({message: 'expected a rejection', operator: 'rejects'})
}

/** Every file below `dir`, as paths relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1)).sort()
}

/** A pid that surely belongs to no process: one that just exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''])
  await new Promise((resolve) => child.on('exit', resolve))
  return child.pid!
}

let work: string
const data = randomBytes(3 * 1024 * 1024 + 12345)
const digest = digestOf(data)

const store = suite('blob store')
store.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ferry-store-'))
})
store.after(async () => {
  await rm(work, {recursive: true, force: true})
})

const fresh = async (name: string) => {
  const s = new BlobStore(join(work, name))
  await s.init()
  return s
}

store('ingest stores a stream under its sha256, with its size', async () => {
  const s = await fresh('ingest')
  const got = await s.ingest(chunked(data), {digest, size: data.length})
  assert.equal(got, {digest, size: data.length})
  assert.equal(s.pathOf(digest), join(s.root, 'blobs', 'sha256', digest.slice(7)))
  assert.ok((await readFile(s.pathOf(digest))).equals(data))
  assert.equal(await s.has(digest), {size: data.length, sealed: false})
  assert.equal(await filesUnder(s.root), [`blobs/sha256/${digest.slice(7)}`])
})

store('ingest without expectations names the blob by what it computed', async () => {
  const s = await fresh('unnamed')
  const got = await s.ingest(Readable.from([Buffer.from('hello')]))
  assert.equal(got, {digest: digestOf(Buffer.from('hello')), size: 5})
})

store('ingest is idempotent when the blob already exists', async () => {
  const s = await fresh('twice')
  await s.ingest(chunked(data), {digest})
  const again = await s.ingest(chunked(data), {digest, size: data.length})
  assert.equal(again, {digest, size: data.length})
  const both = await Promise.all([s.ingest(chunked(data)), s.ingest(chunked(data))])
  assert.equal(both[0], both[1])
  assert.equal(await filesUnder(s.root), [`blobs/sha256/${digest.slice(7)}`])
})

store('a digest mismatch is an integrity error naming the artifact, and nothing is kept', async () => {
  const s = await fresh('mismatch')
  const wrong = digestOf(Buffer.from('something else'))
  const err = await rejects(s.ingest(chunked(data), {digest: wrong, what: 'vm.vhdx'}))
  assert.is(err.code, 'DIGEST_MISMATCH')
  assert.is(err.exit, 3)
  assert.match(err.message, 'vm.vhdx')
  assert.match(err.message, wrong)
  assert.match(err.message, digest)
  assert.equal(await filesUnder(s.root), [])
})

store('a stream shorter or longer than the expected size is SIZE_MISMATCH, nothing kept', async () => {
  const s = await fresh('size')
  const short = await rejects(s.ingest(chunked(data.subarray(0, 1000)), {size: data.length, what: 'k3s'}))
  assert.is(short.code, 'SIZE_MISMATCH')
  assert.is(short.exit, 3)
  assert.match(short.message, `expected ${data.length} bytes, got 1000`)
  // A longer stream is stopped as soon as it passes the size, not read to its end.
  let pulled = 0
  async function* endless() {
    for (;;) {
      pulled++
      yield Buffer.alloc(65536)
    }
  }
  const long = await rejects(s.ingest(endless(), {size: 100_000, what: 'k3s'}))
  assert.is(long.code, 'SIZE_MISMATCH')
  assert.ok(pulled <= 2)
  assert.equal(await filesUnder(s.root), [])
})

store('an error from the source leaves nothing behind and passes through', async () => {
  const s = await fresh('source-error')
  async function* failing() {
    yield data.subarray(0, 1000)
    throw new Error('source broke')
  }
  try {
    await s.ingest(failing())
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).message, 'source broke')
  }
  assert.equal(await filesUnder(s.root), [])
})

store('a full disk while ingesting is a local I/O error (exit 6) and leaves no temp file', async () => {
  if (process.getuid?.() !== 0) return // mounting a small tmpfs needs root, as in CI
  const mnt = join(work, 'small')
  await mkdir(mnt)
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt])
  try {
    const s = new BlobStore(mnt)
    const err = await rejects(s.ingest(chunked(data), {digest, what: 'big.bin'}))
    assert.is(err.exit, 6)
    assert.is(err.code, 'IO_ENOSPC')
    assert.equal(await filesUnder(mnt), [])
  } finally {
    await run('umount', [mnt])
  }
})

store('defaultRoot: flag, then FERRY_STORE, then XDG_CACHE_HOME/ferry, then ~/.cache/ferry', () => {
  const saved = {FERRY_STORE: process.env.FERRY_STORE, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, HOME: process.env.HOME}
  try {
    process.env.FERRY_STORE = '/srv/ferry-store'
    process.env.XDG_CACHE_HOME = '/srv/cache'
    process.env.HOME = '/home/builder'
    assert.is(BlobStore.defaultRoot('/mnt/flag'), '/mnt/flag')
    assert.is(BlobStore.defaultRoot(), '/srv/ferry-store')
    delete process.env.FERRY_STORE
    assert.is(BlobStore.defaultRoot(), '/srv/cache/ferry')
    delete process.env.XDG_CACHE_HOME
    assert.is(BlobStore.defaultRoot(), '/home/builder/.cache/ferry')
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
})

store('claimPartial takes the parked partial once; a second claimant starts empty', async () => {
  const s = await fresh('claim')
  await writeFile(s.partialPath(digest), data.subarray(0, 5000))
  const first = await s.claimPartial(digest)
  const second = await s.claimPartial(digest)
  assert.is(first.size, 5000)
  assert.is(second.size, 0)
  await s.discard(second)
  await first.append(chunked(data.subarray(5000)))
  assert.equal(await s.commit(first, {digest, size: data.length}), {digest, size: data.length})
  assert.equal(await filesUnder(s.root), [`blobs/sha256/${digest.slice(7)}`])
})

store('claimPartial adopts the partial of a killed process, not that of a live one', async () => {
  const s = await fresh('orphans')
  const hex = digest.slice(7)
  const dead = await deadPid()
  await writeFile(join(s.root, 'partial', `${hex}.${process.ppid}.aaaa`), data.subarray(0, 100))
  await writeFile(join(s.root, 'partial', `${hex}.${dead}.bbbb`), data.subarray(0, 7000))
  const writer = await s.claimPartial(digest)
  assert.is(writer.size, 7000)
  await s.park(writer, digest)
  assert.equal(await filesUnder(join(s.root, 'partial')), [hex, `${hex}.${process.ppid}.aaaa`])
  assert.is((await readFile(s.partialPath(digest))).length, 7000)
})

store('resumed bytes are hashed from disk: a wrong prefix fails the digest and is removed', async () => {
  const s = await fresh('bad-prefix')
  const prefix = Buffer.from(data.subarray(0, 4096))
  prefix[10] ^= 0xff
  await writeFile(s.partialPath(digest), prefix)
  const writer = await s.claimPartial(digest)
  await writer.append(chunked(data.subarray(4096)))
  const err = await rejects(s.commit(writer, {digest, what: 'layer'}))
  assert.is(err.code, 'DIGEST_MISMATCH')
  assert.equal(await filesUnder(s.root), [])
})

store('park keeps whichever partial got further', async () => {
  const s = await fresh('park')
  const a = await s.claimPartial(digest)
  const b = await s.claimPartial(digest)
  await a.append(chunked(data.subarray(0, 300_000)))
  await b.append(chunked(data.subarray(0, 100_000)))
  await s.park(a, digest)
  await s.park(b, digest)
  assert.equal(await filesUnder(join(s.root, 'partial')), [digest.slice(7)])
  assert.is((await readFile(s.partialPath(digest))).length, 300_000)
})

store('pathOf refuses something that is not a sha256 digest', () => {
  const s = new BlobStore(join(work, 'x'))
  assert.throws(() => s.pathOf('sha256:../../etc/passwd'), (e: FerryError) => e.code === 'BAD_DIGEST')
  assert.is(toDigest(digest.slice(7).toUpperCase()), digest)
})

store('compareFiles: equal ranges match in full; the first differing byte, a short file and a missing one are told apart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-cmp-'))
  try {
    const a = randomBytes((3 << 20) + 777)
    const b = Buffer.concat([randomBytes(100), a])
    await writeFile(join(dir, 'a'), a)
    await writeFile(join(dir, 'b'), b)
    let seen = 0
    assert.is(await compareFiles(join(dir, 'a'), 0, join(dir, 'b'), 100, a.length, (n) => (seen += n)), a.length)
    assert.is(seen, a.length)
    const flipped = Buffer.from(a)
    flipped[(2 << 20) + 5] ^= 1
    await writeFile(join(dir, 'c'), flipped)
    assert.is(await compareFiles(join(dir, 'c'), 0, join(dir, 'a'), 0, a.length), (2 << 20) + 5)
    await writeFile(join(dir, 'short'), a.subarray(0, 1000))
    assert.is(await compareFiles(join(dir, 'short'), 0, join(dir, 'a'), 0, a.length), 1000)
    try {
      await compareFiles(join(dir, 'a'), 0, join(dir, 'gone'), 0, 10)
      assert.unreachable('a missing file compared')
    } catch (err) {
      assert.ok(err instanceof CompareReadError)
      assert.is((err as CompareReadError).side, 'b')
      assert.is(((err as CompareReadError).cause as NodeJS.ErrnoException).code, 'ENOENT')
    }
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})

store('a lock is removed when its process exits without releasing it; a lock from another boot is broken', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-pidlock-'))
  try {
    const lock = join(dir, 'lock')
    const script = `import {acquirePidLock} from ${JSON.stringify(new URL('../src/store/pid-lock.ts', import.meta.url).pathname)}; await acquirePidLock(${JSON.stringify(lock)}, 'test'); process.exit(3)`
    const code = await new Promise<number | null>((resolve) => spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {stdio: 'inherit'}).on('close', resolve))
    assert.is(code, 3)
    assert.equal(await readdir(dir), [], 'the lock went with its process')
    const {acquirePidLock, lockHolder} = await import('../src/store/pid-lock.js')
    await writeFile(lock, '1 00000000-0000-4000-8000-000000000000\n')
    assert.is(await lockHolder(lock), undefined, 'pid 1 of another boot holds nothing')
    const taken = await acquirePidLock(lock, 'test')
    assert.match(await readFile(lock, 'utf8'), new RegExp(`^${process.pid} [0-9a-f-]{36}\\n$`))
    await taken.release()
    assert.equal(await readdir(dir), [])
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})

store.run()

const hashing = suite('hashing')
hashing.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ferry-hash-'))
})
hashing.after(async () => {
  await rm(work, {recursive: true, force: true})
})

hashing('sha256File streams a file and gives digest and size', async () => {
  const file = join(work, 'f.bin')
  await writeFile(file, data)
  assert.equal(await sha256File(file), {digest, size: data.length})
})

hashing('HashingStream passes bytes through unchanged while hashing them', async () => {
  const hasher = new HashingStream()
  const out: Buffer[] = []
  await pipeline(Readable.from(chunked(data)), hasher, async function (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) out.push(chunk)
  })
  assert.ok(Buffer.concat(out).equals(data))
  assert.is(hasher.digest(), digest)
  assert.is(hasher.size, data.length)
})

hashing.run()

const packs = suite('packs')

packs('a pack is found by digest while intact; an index without its archive goes; an unindexed archive goes once old', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-packs-'))
  try {
    const archive = join(dir, 'bundle.tar')
    const blob = randomBytes(3000)
    await writeFile(archive, Buffer.concat([Buffer.alloc(512), blob]))
    const digest = toDigest(createHash('sha256').update(blob).digest('hex'))
    const id = createHash('sha256').update('archive').digest('hex')
    const p = new Packs(join(dir, 'packs'))
    await mkdir(p.dir)
    assert.ok(await p.add(archive, id, 'head', [{digest, offset: 512, size: blob.length}]))
    const found = await p.locate(digest)
    assert.equal({offset: found?.offset, size: found?.size, intact: found?.intact}, {offset: 512, size: 3000, intact: true})
    assert.equal(await p.whole('head', [{digest, size: blob.length}]), {path: join(p.dir, `${id}.tar`), id, size: 3512})
    assert.is(await p.whole('other head', [{digest, size: blob.length}]), undefined)
    // an index whose archive is gone
    const lost = 'a'.repeat(64)
    await writeFile(join(p.dir, `${lost}.json`), '{}')
    // an archive without an index: a build may be writing the index right now, unless it is old
    const fresh = 'b'.repeat(64)
    await writeFile(join(p.dir, `${fresh}.tar`), 'x')
    await new Packs(p.dir).locate(digest)
    const names = await readdir(p.dir)
    assert.not.ok(names.includes(`${lost}.json`))
    assert.ok(names.includes(`${fresh}.tar`))
    // (once old: a moment later, with no grace period)
    await new Promise((r) => setTimeout(r, 20))
    await new Packs(p.dir, 0).locate(digest)
    assert.not.ok((await readdir(p.dir)).includes(`${fresh}.tar`))
    // edited in place: no longer intact, so neither used whole nor trusted
    await new Promise((r) => setTimeout(r, 50))
    await writeFile(archive, Buffer.concat([Buffer.alloc(512, 1), blob]))
    const edited = new Packs(p.dir)
    assert.is((await edited.locate(digest))?.intact, false)
    assert.is(await edited.whole('head', [{digest, size: blob.length}]), undefined)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})

packs.run()
