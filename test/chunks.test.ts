// The content-defined chunker and the chunk formats: cuts depend on content only (same bytes, same
// chunks, on either thread), respect min/max, and an insertion disturbs only the chunks around it;
// an index survives a round trip and a damaged one is refused; a rebuild from base + pack gives the
// same bytes and refuses a flipped byte. A download cut into chunks as it is written (the blob
// writer's hash thread) gives the same index, also when resumed or started over.
import {createHash, randomBytes, randomInt} from 'node:crypto'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {createChunker, indexFile, type ChunkerEngine} from '../src/chunks/chunker.js'
import {ChunkIndex, HEADER_BYTES, RECORD_BYTES} from '../src/chunks/index-format.js'
import {BaseChunks, summarisePack} from '../src/chunks/plan.js'
import {packBytes} from '../src/chunks/pack-writer.js'
import {rebuildChunked} from '../src/chunks/rebuild.js'
import {openFileSource} from '../src/chunks/sources.js'
import {CHUNK_PARAMS, type ChunkParams} from '../src/chunks/params.js'
import {BlobWriter} from '../src/store/blob-writer.js'

const KiB = 1024
const MiB = 1 << 20
const test = suite('chunks')
const ctx = {} as {dir: string}

/** Pseudo-random but repeatable bytes (random data is the worst case for a gear chunker: no help from structure). */
function bytesOf(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size)
  for (let at = 0, n = 0; at < size; n++) {
    const block = createHash('sha256').update(`${seed}:${n}`).digest()
    at += block.copy(out, at)
  }
  return out
}

function lengths(data: Buffer, pieces = [data.length]): number[] {
  const chunker = createChunker()
  const records: Buffer[] = []
  let at = 0
  for (const n of pieces) {
    records.push(chunker.push(data.subarray(at, at + n)))
    at += n
  }
  records.push(chunker.end())
  const all = Buffer.concat(records)
  return Array.from({length: all.length / 36}, (_, i) => all.readUInt32LE(i * 36 + 32))
}

const hashes = (index: ChunkIndex) => Array.from({length: index.count}, (_, i) => index.hashAt(i).toString('hex'))

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'ferry-chunks-'))
})
test.after(async () => {
  await rm(ctx.dir, {recursive: true, force: true})
})

test('chunks respect min and max, average near 64 KiB, and add up to the input', () => {
  const data = bytesOf('a', 24 * MiB)
  const ls = lengths(data)
  assert.is(ls.reduce((a, b) => a + b, 0), data.length)
  for (const n of ls.slice(0, -1)) assert.ok(n >= CHUNK_PARAMS.min && n <= CHUNK_PARAMS.max, `chunk of ${n} bytes`)
  const avg = data.length / ls.length
  assert.ok(avg > 40 * KiB && avg < 100 * KiB, `average ${avg}`)
})

test('a run of zeros is cut into equal chunks just above min, so zero runs dedupe and resync at once', () => {
  const ls = lengths(Buffer.alloc(3 * MiB))
  assert.equal(ls.slice(0, -1), Array(ls.length - 1).fill(CHUNK_PARAMS.min + 1))
  // a byte of data inside a zero run moves only its own chunk's end
  const zeros = Buffer.alloc(3 * MiB)
  zeros[MiB + 5] = 1
  const around = lengths(zeros)
  assert.ok(around.filter((n) => n !== CHUNK_PARAMS.min + 1).length <= 3)
})

test('a constant run of another byte is cut at max', () => {
  const ls = lengths(Buffer.alloc(3 * MiB, 0xff))
  assert.equal(ls.slice(0, -1), Array(ls.length - 1).fill(CHUNK_PARAMS.max))
})

test('boundaries depend on content only: any split of the input, either thread, same chunks', async () => {
  const data = bytesOf('b', 6 * MiB + 12345)
  const whole = lengths(data)
  assert.equal(lengths(data, [1, 4095, 300 * KiB, 7, 2 * MiB, data.length]), whole)
  assert.equal(lengths(data, Array(Math.ceil(data.length / 999)).fill(999)), whole)
  const file = join(ctx.dir, 'b.bin')
  await writeFile(file, data)
  const index = await indexFile(file)
  assert.equal(Array.from({length: index.count}, (_, i) => index.lengthAt(i)), whole)
  assert.is(index.size, data.length)
})

test('the WebAssembly gear loop cuts exactly where the JavaScript reference does (48 random cases)', () => {
  const records = (engine: ChunkerEngine, params: ChunkParams, data: Buffer, pieces: number[]) => {
    const chunker = createChunker(params, engine)
    const out: Buffer[] = []
    let at = 0
    for (const n of pieces) {
      out.push(chunker.push(data.subarray(at, at + n)))
      at += n
    }
    out.push(chunker.end())
    return Buffer.concat(out)
  }
  for (let c = 0; c < 48; c++) {
    const size = c === 0 ? 0 : randomInt(1, 3 * MiB)
    // random, zero runs (disk free space), a constant byte, text-like low entropy, and mixes of them
    const kind = c % 4
    const data = kind === 0 ? randomBytes(size) : Buffer.alloc(size, kind === 2 ? 0x5a : 0)
    if (kind === 1 || kind === 3) {
      for (let at = 0; at < size; at += randomInt(1, 512 * KiB)) {
        const n = Math.min(size - at, randomInt(1, 256 * KiB))
        const fill = kind === 1 ? randomBytes(n) : Buffer.from('the quick brown fox '.repeat(Math.ceil(n / 20)).slice(0, n))
        fill.copy(data, at)
      }
    }
    const min = 1 << randomInt(8, 15)
    const avg = min << randomInt(1, 4)
    const params: ChunkParams = {min, avg, max: avg << randomInt(1, 3), level: randomInt(0, 3), seed: randomInt(0, 2 ** 32)}
    const pieces: number[] = []
    for (let left = size; left > 0; ) {
      const n = Math.min(left, [1, 7, 4096, 65536, 512 * KiB, 2 * MiB][randomInt(0, 6)] + randomInt(0, 100))
      pieces.push(n)
      left -= n
    }
    const js = records('js', params, data, pieces)
    const wasm = records('wasm', params, data, [size])
    const what = `case ${c}: ${size} bytes, kind ${kind}, ${JSON.stringify(params)}`
    assert.ok(js.equals(wasm), what)
    assert.ok(js.equals(records('wasm', params, data, pieces)), `${what}, pieces`)
    assert.is(js.length > 0, size > 0, what)
  }
})

test('an insertion disturbs only the chunks around it', async () => {
  const data = bytesOf('c', 16 * MiB)
  const at = 7 * MiB + 777
  const changed = Buffer.concat([data.subarray(0, at), randomBytes(MiB), data.subarray(at)])
  await writeFile(join(ctx.dir, 'c1'), data)
  await writeFile(join(ctx.dir, 'c2'), changed)
  const [a, b] = [await indexFile(join(ctx.dir, 'c1')), await indexFile(join(ctx.dir, 'c2'))]
  const old = new Set(hashes(a))
  const fresh = hashes(b).filter((h) => !old.has(h))
  const summary = summarisePack(b, new BaseChunks([a]))
  // 1 MiB inserted: the new chunks hold it and at most a few chunks either side
  assert.ok(summary.packSize < MiB + 4 * CHUNK_PARAMS.max, `pack of ${summary.packSize} bytes`)
  assert.is(summary.chunks - summary.reused, fresh.length)
  const kept = new Set(hashes(b))
  const lost = hashes(a).filter((h) => !kept.has(h)).length
  assert.ok(lost <= 4, `${lost} old chunks lost`)
})

test('an index round-trips, and a damaged one is refused', async () => {
  const file = join(ctx.dir, 'd.bin')
  await writeFile(file, bytesOf('d', 2 * MiB))
  const index = await indexFile(file)
  const bytes = index.serialise()
  assert.is(bytes.length, HEADER_BYTES + RECORD_BYTES * index.count)
  const again = ChunkIndex.parse(bytes, 'd.bin')
  assert.equal(hashes(again), hashes(index))
  assert.equal(again.params, CHUNK_PARAMS)
  const cut = bytes.subarray(0, bytes.length - 1)
  assert.throws(() => ChunkIndex.parse(cut, 'd.bin'), /chunk index of d\.bin is damaged/)
  const wrongLength = Buffer.from(bytes)
  wrongLength.writeUInt32LE(5, HEADER_BYTES + 32)
  assert.throws(() => ChunkIndex.parse(wrongLength, 'd.bin'), /add up to/)
})

test('rebuild from base + pack gives the new file; a flipped pack byte or base byte is exit 3', async () => {
  const base = bytesOf('e', 8 * MiB)
  const next = Buffer.from(base)
  randomBytes(MiB).copy(next, 3 * MiB + 5)
  const [pb, pn] = [join(ctx.dir, 'e1'), join(ctx.dir, 'e2')]
  await writeFile(pb, base)
  await writeFile(pn, next)
  const [ib, inew] = [await indexFile(pb), await indexFile(pn)]
  const table = new BaseChunks([ib])
  const src = await openFileSource(pn)
  const parts: Buffer[] = []
  for await (const b of packBytes(inew, table, src, 'e2')) parts.push(b)
  await src.close()
  const pack = join(ctx.dir, 'e.pack')
  await writeFile(pack, Buffer.concat(parts))
  assert.is(Buffer.concat(parts).length, summarisePack(inew, table).packSize)
  const expect = {digest: 'sha256:' + createHash('sha256').update(next).digest('hex'), size: next.length}
  const run = async (basePath: string, packPath: string, target?: string) => {
    const sources = [await openFileSource(basePath)]
    const packSource = await openFileSource(packPath)
    try {
      await rebuildChunked({index: inew, base: table, sources, pack: packSource, expect, what: 'e2'}, target)
    } finally {
      await sources[0].close()
      await packSource.close()
    }
  }
  const out = join(ctx.dir, 'e.out')
  await run(pb, pack, out)
  assert.ok((await readFile(out)).equals(next))
  const flipped = Buffer.concat(parts)
  flipped[1000] ^= 1
  await writeFile(join(ctx.dir, 'bad.pack'), flipped)
  const refused = await run(pb, join(ctx.dir, 'bad.pack'), join(ctx.dir, 'never')).catch((e) => e)
  assert.is(refused.code, 'PACK_CORRUPT')
  assert.is(refused.exit, 3)
  const badBase = Buffer.from(base)
  badBase[100] ^= 1
  await writeFile(join(ctx.dir, 'bad.base'), badBase)
  const refused2 = await run(join(ctx.dir, 'bad.base'), pack).catch((e) => e)
  assert.is(refused2.code, 'BASE_CORRUPT')
  assert.match(refused2.message, /e2/)
  // a base copy that ends early (chunks read together in one call): the first chunk it lacks is named
  const cutAt = 6 * MiB + 12345
  await writeFile(join(ctx.dir, 'short.base'), base.subarray(0, cutAt))
  const refused3 = await run(join(ctx.dir, 'short.base'), pack, join(ctx.dir, 'never')).catch((e) => e)
  assert.is(refused3.code, 'BASE_CORRUPT')
  const lacking = Array.from(inew.chunks()).find((c) => c.offset + c.length > cutAt)!
  assert.match(refused3.message, new RegExp(`chunk ${lacking.i} \\(at byte ${lacking.offset}\\) from the base copy`))
  await readFile(join(ctx.dir, 'never')).then(
    () => assert.unreachable('a refused rebuild left a file'),
    () => undefined,
  )
})

async function write(name: string, data: Buffer): Promise<string> {
  await writeFile(join(ctx.dir, name), data)
  return join(ctx.dir, name)
}

/** Feeds `data` to a writer in pieces of odd sizes, as a download would. */
async function feed(writer: BlobWriter, data: Buffer): Promise<void> {
  await writer.append((async function* () {
    for (let at = 0, n = 1; at < data.length; n = (n * 7 + 3) % 200_000 + 1) {
      yield data.subarray(at, at + n)
      at += n
    }
  })())
}

test('a download chunked as it is written gives the index of the finished file; resumed or started over too', async () => {
  const data = Buffer.concat([bytesOf('tee', 5 * MiB), Buffer.alloc(1 * MiB), bytesOf('tee-2', 3 * MiB + 777)])
  const expected = (await indexFile(await write('tee.bin', data))).serialise()
  const indexOf = (got: {size: number; chunks?: Buffer}) => ChunkIndex.fromRecords(CHUNK_PARAMS, got.size, got.chunks!).serialise()

  const fresh = await BlobWriter.create(join(ctx.dir, 'fresh.part'))
  fresh.chunkWith(CHUNK_PARAMS)
  await feed(fresh, data)
  const one = await fresh.finish()
  assert.ok(one.chunks, 'no chunk records')
  assert.ok(indexOf(one).equals(expected), 'chunked while writing: another index')

  // a killed run kept 4 MiB + 5 bytes; the next one resumes: the kept bytes are chunked from the file first
  const kept = 4 * MiB + 5
  await writeFile(join(ctx.dir, 'resumed.part'), data.subarray(0, kept))
  const resumed = await BlobWriter.resume(join(ctx.dir, 'resumed.part'))
  resumed.chunkWith(CHUNK_PARAMS)
  await feed(resumed, data.subarray(kept))
  assert.ok(indexOf(await resumed.finish()).equals(expected), 'resumed: another index')

  // the source restarted from byte 0 after some wrong bytes: the chunks start over with the file
  const restarted = await BlobWriter.create(join(ctx.dir, 'restarted.part'))
  restarted.chunkWith(CHUNK_PARAMS)
  await feed(restarted, bytesOf('wrong', 2 * MiB))
  await restarted.truncate()
  await feed(restarted, data)
  assert.ok(indexOf(await restarted.finish()).equals(expected), 'started over: another index')

  // without chunkWith, no records
  const plain = await BlobWriter.create(join(ctx.dir, 'plain.part'))
  await feed(plain, data.subarray(0, MiB))
  assert.is((await plain.finish()).chunks, undefined)
})

test.run()
