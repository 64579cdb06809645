import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {startFileServer, type FileServer, type FileServerOptions} from '../src/demo/file-server.js'
import {fetchBytes, fetchToStore, probe, type FetchOptions} from '../src/sources/http.js'
import {mapPool} from '../src/sources/pool.js'
import {BlobStore} from '../src/store/blob-store.js'
import {FerryError} from '../src/errors.js'

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
/** Fast retries so failure paths stay quick. */
const quick: FetchOptions = {retries: 3, backoffMs: 5}

const data = randomBytes(5 * 1024 * 1024 + 777)
const digest = digestOf(data)
const small = Buffer.from('sha256  artifact\n')

let work: string
let servers: FileServer[] = []
let storeCount = 0

async function serve(options: Omit<FileServerOptions, 'root'> = {}): Promise<FileServer> {
  const server = await startFileServer({root: join(work, 'www'), ...options})
  servers.push(server)
  return server
}

async function newStore(): Promise<BlobStore> {
  const store = new BlobStore(join(work, `store-${++storeCount}`))
  await store.init()
  return store
}

async function rejects(promise: Promise<unknown>): Promise<FerryError> {
  try {
    await promise
  } catch (err) {
    if (!(err instanceof FerryError)) throw err
    return err
  }
  throw new assert.Assertion({message: 'expected a rejection', operator: 'rejects'})
}

const list = async (dir: string) => (await readdir(dir)).sort()
const gets = (server: FileServer) => server.requests.filter((r) => r.method === 'GET')

const http = suite('http fetch')
http.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ferry-http-'))
  await rm(join(work, 'www'), {recursive: true, force: true})
  await import('node:fs/promises').then((fs) => fs.mkdir(join(work, 'www')))
  await writeFile(join(work, 'www', 'big.bin'), data)
  await writeFile(join(work, 'www', 'SHA256SUMS'), small)
})
http.after.each(async () => {
  await Promise.all(servers.map((s) => s.close()))
  servers = []
})
http.after(async () => {
  await rm(work, {recursive: true, force: true})
})

http('fetches a file into the store with the right digest and size, reporting progress', async () => {
  const server = await serve()
  const store = await newStore()
  const events: number[] = []
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, {onProgress: (e) => events.push(e.done)})
  assert.equal(got, {digest, size: data.length, fetched: data.length})
  assert.ok((await readFile(store.pathOf(digest))).equals(data))
  assert.is(events.at(-1), data.length)
  assert.equal(await list(join(store.root, 'partial')), [])
  assert.equal(await list(join(store.root, 'tmp')), [])
})

http('a blob already in the store is not fetched again', async () => {
  const server = await serve()
  const store = await newStore()
  await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest})
  const before = server.requests.length
  const again = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest.slice(7), size: data.length})
  assert.equal(again, {digest, size: data.length, fetched: 0})
  assert.is(server.requests.length, before)
})

http('a checksum mismatch is exit 3 and leaves nothing in the store, not even a partial', async () => {
  const server = await serve()
  const store = await newStore()
  const wrong = digestOf(Buffer.from('not this'))
  const err = await rejects(fetchToStore(store, `${server.url}/big.bin`, {sha256: wrong}, {...quick, item: 'vm-image'}))
  assert.is(err.exit, 3)
  assert.is(err.code, 'DIGEST_MISMATCH')
  assert.match(err.message, 'vm-image')
  assert.is(await store.has(wrong), undefined)
  assert.is(await store.has(digest), undefined)
  assert.equal(await list(join(store.root, 'partial')), [])
  assert.equal(await list(join(store.root, 'tmp')), [])
})

http('a body cut short of its Content-Length is resumed with Range from the byte it stopped at', async () => {
  const cut = 1_500_000
  const server = await serve({intercept: (_req, _res, ctx) => (ctx.hit === 1 ? ctx.serve({cutAfter: cut}).then(() => true) : false)})
  const store = await newStore()
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.equal(got, {digest, size: data.length, fetched: data.length})
  assert.equal(
    gets(server).map((r) => r.range),
    [undefined, `bytes=${cut}-`],
  )
})

http('a connection reset mid-body is retried and resumed, only the rest transferred again', async () => {
  const cut = 2_000_000
  const server = await serve({intercept: (_req, _res, ctx) => (ctx.hit === 1 ? ctx.serve({cutAfter: cut, cutHow: 'reset'}).then(() => true) : false)})
  const store = await newStore()
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.is(got.digest, digest)
  const second = gets(server)[1]
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(second.range ?? '')?.[1])
  assert.ok(resumedAt > 0 && resumedAt <= cut, `resumed at ${second.range}`)
  // Everything that arrived before the reset was kept: the two transfers add up to the file exactly.
  assert.is(got.fetched, data.length)
})

http('a close-delimited body that ends early is noticed by size and resumed', async () => {
  const cut = 1_000_000
  const server = await serve({
    intercept: (_req, res, ctx) => {
      if (ctx.hit > 1) return false
      res.writeHead(200, {'Content-Type': 'application/octet-stream', Connection: 'close'})
      res.end(data.subarray(0, cut))
      return true
    },
  })
  const store = await newStore()
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.equal(got, {digest, size: data.length, fetched: data.length})
  assert.is(gets(server)[1].range, `bytes=${cut}-`)
})

http('a partial left by an earlier killed run is continued: only the rest is fetched', async () => {
  const kept = 3_000_000
  const server = await serve()
  const store = await newStore()
  await writeFile(store.partialPath(digest), data.subarray(0, kept))
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.equal(got, {digest, size: data.length, fetched: data.length - kept})
  assert.equal(
    gets(server).map((r) => r.range),
    [`bytes=${kept}-`],
  )
  assert.equal(await list(join(store.root, 'partial')), [])
})

http('an interrupted download that runs out of retries is parked, and the next run resumes it', async () => {
  const cut = 1_000_000
  const failing = await serve({
    intercept: (_req, res, ctx) => {
      if (ctx.hit === 1) return ctx.serve({cutAfter: cut}).then(() => true)
      res.writeHead(503).end()
      return true
    },
  })
  const store = await newStore()
  const err = await rejects(fetchToStore(store, `${failing.url}/big.bin`, {sha256: digest, size: data.length}, {retries: 1, backoffMs: 1}))
  assert.is(err.exit, 5)
  assert.is(err.code, 'HTTP_503')
  assert.ok((await readFile(store.partialPath(digest))).equals(data.subarray(0, cut)))

  const healthy = await serve()
  const got = await fetchToStore(store, `${healthy.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.equal(got, {digest, size: data.length, fetched: data.length - cut})
  assert.equal(
    gets(healthy).map((r) => r.range),
    [`bytes=${cut}-`],
  )
})

http('a partial longer than the expected size is discarded and the file fetched whole', async () => {
  const server = await serve()
  const store = await newStore()
  await writeFile(store.partialPath(digest), Buffer.concat([data, Buffer.from('extra')]))
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.equal(got, {digest, size: data.length, fetched: data.length})
  assert.equal(
    gets(server).map((r) => r.range),
    [undefined],
  )
})

http('a complete partial of unknown size is finished by a 416 without transferring anything', async () => {
  const server = await serve()
  const store = await newStore()
  await writeFile(store.partialPath(digest), data)
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest}, quick)
  assert.equal(got, {digest, size: data.length, fetched: 0})
  assert.equal(
    gets(server).map((r) => r.range),
    [`bytes=${data.length}-`],
  )
})

http('500 twice then 200 succeeds after retries', async () => {
  const server = await serve({
    intercept: (_req, res, ctx) => {
      if (ctx.hit > 2) return false
      res.writeHead(500).end('boom')
      return true
    },
  })
  const store = await newStore()
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest}, quick)
  assert.is(got.digest, digest)
  assert.is(gets(server).length, 3)
})

http('a server that keeps failing ends in an upstream error with its status', async () => {
  const server = await serve({intercept: (_req, res) => (res.writeHead(503).end(), true)})
  const err = await rejects(fetchToStore(await newStore(), `${server.url}/big.bin`, {sha256: digest}, {retries: 2, backoffMs: 1}))
  assert.is(err.exit, 5)
  assert.is(err.code, 'HTTP_503')
  assert.is(gets(server).length, 3)
})

http('404 is an upstream error HTTP_404 naming the URL, with no retry', async () => {
  const server = await serve()
  const url = `${server.url}/missing.bin`
  const err = await rejects(fetchToStore(await newStore(), url, {sha256: digest}, quick))
  assert.is(err.exit, 5)
  assert.is(err.code, 'HTTP_404')
  assert.match(err.message, url)
  assert.is(server.requests.length, 1)
})

http('a port nobody listens on is UNREACHABLE after the retries', async () => {
  const probeServer = createServer()
  await new Promise<void>((resolve) => probeServer.listen(0, '127.0.0.1', resolve))
  const port = (probeServer.address() as AddressInfo).port
  await new Promise((resolve) => probeServer.close(resolve))
  const err = await rejects(fetchToStore(await newStore(), `http://127.0.0.1:${port}/x`, {sha256: digest}, {retries: 2, backoffMs: 1}))
  assert.is(err.exit, 5)
  assert.is(err.code, 'UNREACHABLE')
  assert.match(err.message, `127.0.0.1:${port}`)
})

http('redirects are followed', async () => {
  const server = await serve({redirects: {'/latest/big.bin': '/big.bin'}})
  const got = await fetchToStore(await newStore(), `${server.url}/latest/big.bin`, {sha256: digest}, quick)
  assert.is(got.digest, digest)
  assert.equal(
    server.requests.map((r) => r.path),
    ['/latest/big.bin', '/big.bin'],
  )
})

http('a server that ignores Range (200) makes the download start over, still correct', async () => {
  const kept = 2_000_000
  const server = await serve({intercept: (_req, _res, ctx) => ctx.serve({ignoreRange: true}).then(() => true)})
  const store = await newStore()
  await writeFile(store.partialPath(digest), data.subarray(0, kept))
  const got = await fetchToStore(store, `${server.url}/big.bin`, {sha256: digest, size: data.length}, quick)
  assert.equal(got, {digest, size: data.length, fetched: data.length})
  assert.is(gets(server)[0].range, `bytes=${kept}-`)
  assert.ok((await readFile(store.pathOf(digest))).equals(data))
})

http('a server that stalls is a TIMEOUT once the retries are spent', async () => {
  const server = await serve({
    intercept: (_req, res) => {
      res.writeHead(200, {'Content-Length': '100'})
      res.write('only a little')
      return true
    },
  })
  const err = await rejects(fetchToStore(await newStore(), `${server.url}/big.bin`, {sha256: digest}, {retries: 1, backoffMs: 1, timeoutMs: 150}))
  assert.is(err.code, 'TIMEOUT')
  assert.is(err.exit, 5)
  assert.is(gets(server).length, 2)
})

http('fetchBytes returns small documents and refuses ones over maxBytes', async () => {
  const server = await serve()
  assert.ok((await fetchBytes(`${server.url}/SHA256SUMS`)).equals(small))
  const err = await rejects(fetchBytes(`${server.url}/big.bin`, {maxBytes: 1024}))
  assert.is(err.exit, 3)
  assert.is(err.code, 'TOO_LARGE')
  const chunked = await serve({
    intercept: (_req, res) => {
      res.writeHead(200)
      res.end(data.subarray(0, 4096))
      return true
    },
  })
  assert.is((await rejects(fetchBytes(`${chunked.url}/any`, {maxBytes: 1024}))).code, 'TOO_LARGE')
  assert.is((await rejects(fetchBytes(`${server.url}/nope`, quick))).code, 'HTTP_404')
})

http('probe learns the size and final URL, falling back to a ranged GET when HEAD is refused', async () => {
  const server = await serve({redirects: {'/latest': '/big.bin'}})
  assert.equal(await probe(`${server.url}/latest`), {size: data.length, url: `${server.url}/big.bin`})
  const noHead = await serve({
    intercept: (req, res) => {
      if (req.method !== 'HEAD') return false
      res.writeHead(405).end()
      return true
    },
  })
  assert.equal(await probe(`${noHead.url}/big.bin`), {size: data.length, url: `${noHead.url}/big.bin`})
  assert.equal(
    noHead.requests.map((r) => [r.method, r.range]),
    [
      ['HEAD', undefined],
      ['GET', 'bytes=0-0'],
    ],
  )
})

http.run()

const files = suite('file server')
files.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ferry-files-'))
  await import('node:fs/promises').then((fs) => fs.mkdir(join(work, 'www')))
  await writeFile(join(work, 'www', 'big.bin'), data)
  await writeFile(join(work, 'secret'), 'outside the root')
})
files.after(async () => {
  await Promise.all(servers.map((s) => s.close()))
  servers = []
  await rm(work, {recursive: true, force: true})
})

files('serves ranges, answers 416 past the end, 404 when missing, and refuses traversal', async () => {
  const server = await serve()
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, {headers})
  const part = await get('/big.bin', {Range: 'bytes=10-19'})
  assert.is(part.status, 206)
  assert.is(part.headers.get('content-range'), `bytes 10-19/${data.length}`)
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(10, 20)))
  const tail = await get('/big.bin', {Range: `bytes=${data.length - 5}-`})
  assert.ok(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(-5)))
  const past = await get('/big.bin', {Range: `bytes=${data.length}-`})
  assert.is(past.status, 416)
  assert.is(past.headers.get('content-range'), `bytes */${data.length}`)
  await past.arrayBuffer()
  const missing = await get('/nothing')
  assert.is(missing.status, 404)
  await missing.arrayBuffer()
  const out = await get('/..%2fsecret')
  assert.is(out.status, 403)
  await out.arrayBuffer()
  const head = await fetch(`${server.url}/big.bin`, {method: 'HEAD'})
  assert.is(head.headers.get('content-length'), String(data.length))
})

files.run()

const pool = suite('mapPool')

pool('never runs more than the limit at once, and keeps the order of results', async () => {
  let running = 0
  let peak = 0
  const results = await mapPool([...Array(20).keys()], 4, async (n) => {
    running++
    peak = Math.max(peak, running)
    await new Promise((resolve) => setTimeout(resolve, 2 + (n % 3)))
    running--
    return n * 2
  })
  assert.is(peak, 4)
  assert.equal(
    results,
    [...Array(20).keys()].map((n) => n * 2),
  )
})

pool('after a failure starts nothing new, lets running work settle, then throws the first error', async () => {
  const started: number[] = []
  let settled = 0
  try {
    await mapPool([...Array(10).keys()], 3, async (n) => {
      started.push(n)
      await new Promise((resolve) => setTimeout(resolve, n === 1 ? 1 : 20))
      settled++
      if (n === 1) throw new Error('item 1 failed')
      if (n === 2) throw new Error('item 2 failed too')
      return n
    })
    assert.unreachable()
  } catch (err) {
    assert.is((err as Error).message, 'item 1 failed')
  }
  assert.equal(started, [0, 1, 2])
  assert.is(settled, 3)
})

pool.run()
