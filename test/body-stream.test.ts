// getBody: the GET that streams large bodies through one reused read buffer. Real servers on
// loopback (plain and TLS with a CA made by openssl), slow consumers, every body framing.
import {execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {createServer as createHttp, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createHttps} from 'node:https'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {getBody, type BodyResponse, type BodySink} from '../src/sources/body-stream.js'

const test = suite('body-stream')
const big = randomBytes(12 << 20)
const bigSha = createHash('sha256').update(big).digest('hex')
const ctx = {} as {dir: string; plain: Server; other: Server; secure: Server; base: string; otherBase: string; tlsBase: string; ca: string; seen: Array<string | undefined>}

function handler(req: IncomingMessage, res: ServerResponse): void {
  ctx.seen.push(req.headers.authorization)
  const url = req.url ?? '/'
  if (url === '/length') {
    res.setHeader('content-length', big.length)
    res.end(big)
  } else if (url === '/chunked') {
    // odd-sized chunks so chunk boundaries fall anywhere in a read
    let i = 0
    const step = (): void => {
      while (i < big.length) {
        const piece = big.subarray(i, i + 99_991)
        i += piece.length
        if (!res.write(piece)) return void res.once('drain', step)
      }
      res.end()
    }
    step()
  } else if (url === '/close') {
    res.socket!.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n')
    res.socket!.end(big.subarray(0, 3 << 20))
  } else if (url === '/continue') {
    // an interim 100 answer before the real one, and a header spread over two packets
    res.socket!.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Le')
    setTimeout(() => res.socket!.end('ngth: 5\r\nX-Two: a\r\nX-Two: b\r\n\r\nhello'), 20)
  } else if (url === '/cut') {
    res.setHeader('content-length', big.length)
    res.write(big.subarray(0, 1 << 20), () => setTimeout(() => res.socket!.destroy(), 20))
  } else if (url === '/redirect-same') {
    res.writeHead(307, {location: '/length'})
    res.end()
  } else if (url === '/redirect-other') {
    res.writeHead(302, {location: `${ctx.otherBase}/length`})
    res.end()
  } else if (url === '/loop') {
    res.writeHead(302, {location: '/loop'})
    res.end()
  } else {
    res.writeHead(404, {'content-type': 'application/json'})
    res.end('{"errors":[{"code":"BLOB_UNKNOWN"}]}')
  }
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** Reads the whole body slowly (a consumer that lets reads pile up) and hashes it. */
async function drain(res: BodyResponse): Promise<{bytes: number; sha: string}> {
  const hash = createHash('sha256')
  let bytes = 0
  let turn = 0
  for await (const piece of res.body) {
    // the view must still hold its bytes after the socket had time to read more
    if (turn++ % 7 === 0) await sleep(1)
    hash.update(piece)
    bytes += piece.length
  }
  return {bytes, sha: hash.digest('hex')}
}


/**
 * A sink like the blob writer's: a ring of two odd-sized buffers, filled region by region; a full
 * buffer is "written" (hashed) a little later, and the sink asks to wait while the next one is
 * still busy. Counts the bytes copied into its regions by the reader (the rest landed there
 * straight from the socket) and any call made after `closed` was set.
 */
function ringSink(size = 300_007) {
  const ring = [Buffer.alloc(size), Buffer.alloc(size)]
  const busy: Array<Promise<void> | undefined> = [undefined, undefined]
  const hash = createHash('sha256')
  const state = {bytes: 0, copied: 0, waits: 0, late: 0, closed: false, turn: 0, fill: 0}
  const sink: BodySink = {
    region() {
      if (state.closed) state.late++
      const view = ring[state.turn].subarray(state.fill)
      // the reader copies with set(); a socket read into the region does not
      view.set = (array: ArrayLike<number>, offset?: number) => {
        state.copied += array.length
        Uint8Array.prototype.set.call(view, array, offset)
      }
      return view
    },
    took(n) {
      if (state.closed) state.late++
      state.bytes += n
      state.fill += n
      if (state.fill < size) return undefined
      const full = ring[state.turn]
      const index = state.turn
      busy[index] = sleep(2).then(() => {
        hash.update(full)
        busy[index] = undefined
      })
      state.turn = 1 - state.turn
      state.fill = 0
      const next = busy[state.turn]
      if (!next) return undefined
      state.waits++
      return next
    },
  }
  const finish = async () => {
    await Promise.all(busy)
    hash.update(ring[state.turn].subarray(0, state.fill))
    return hash.digest('hex')
  }
  return {sink, state, finish}
}

test.before(async () => {
  ctx.seen = []
  ctx.dir = mkdtempSync(join(tmpdir(), 'ferry-body-'))
  const key = join(ctx.dir, 'key.pem')
  const cert = join(ctx.dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], {stdio: 'ignore'})
  ctx.ca = readFileSync(cert, 'utf8')
  ctx.plain = createHttp(handler)
  ctx.other = createHttp(handler)
  ctx.secure = createHttps({key: readFileSync(key), cert: readFileSync(cert)}, handler)
  ctx.base = `http://127.0.0.1:${await listen(ctx.plain)}`
  ctx.otherBase = `http://localhost:${await listen(ctx.other)}`
  ctx.tlsBase = `https://localhost:${await listen(ctx.secure)}`
})

test.after(() => {
  for (const s of [ctx.plain, ctx.other, ctx.secure]) s?.close()
  rmSync(ctx.dir, {recursive: true, force: true})
})

test('a Content-Length body arrives intact through one reused buffer, even to a slow reader', async () => {
  const res = await getBody(`${ctx.base}/length`)
  assert.is(res.status, 200)
  const got = await drain(res)
  assert.is(got.bytes, big.length)
  assert.is(got.sha, bigSha)
})

test('chunked and read-until-close bodies are decoded', async () => {
  const chunked = await drain(await getBody(`${ctx.base}/chunked`))
  assert.is(chunked.sha, bigSha)
  const closed = await drain(await getBody(`${ctx.base}/close`))
  assert.is(closed.bytes, 3 << 20)
  assert.is(closed.sha, createHash('sha256').update(big.subarray(0, 3 << 20)).digest('hex'))
})

test('an interim 1xx answer is skipped; a head split across reads and repeated headers are read right', async () => {
  const res = await getBody(`${ctx.base}/continue`)
  assert.is(res.status, 200)
  assert.is(res.headers.get('x-two'), 'a, b')
  assert.is(await res.text(), 'hello')
})

test('over TLS with the CA given, a slow reader gets every byte; without it the certificate is refused', async () => {
  const got = await drain(await getBody(`${ctx.tlsBase}/length`, {tls: {ca: [ctx.ca]}}))
  assert.is(got.sha, bigSha)
  try {
    await getBody(`${ctx.tlsBase}/length`)
    assert.unreachable('an untrusted certificate was accepted')
  } catch (err) {
    assert.match(String((err as {code?: string}).code), /SELF_SIGNED|UNABLE_TO_VERIFY/)
  }
})

test('a body cut short is an error, not a short success', async () => {
  const res = await getBody(`${ctx.base}/cut`)
  try {
    await drain(res)
    assert.unreachable('a truncated body ended normally')
  } catch (err) {
    assert.is((err as {code?: string}).code, 'ERR_STREAM_PREMATURE_CLOSE')
  }
})

test('redirects are followed; Authorization goes to the same host only; loops stop', async () => {
  ctx.seen = []
  const same = await getBody(`${ctx.base}/redirect-same`, {headers: {Authorization: 'Bearer t'}})
  assert.is((await drain(same)).sha, bigSha)
  assert.equal(ctx.seen, ['Bearer t', 'Bearer t'])
  ctx.seen = []
  const other = await getBody(`${ctx.base}/redirect-other`, {headers: {Authorization: 'Bearer t'}})
  assert.is(other.url, `${ctx.otherBase}/length`)
  assert.is((await drain(other)).sha, bigSha)
  assert.equal(ctx.seen, ['Bearer t', undefined])
  try {
    await getBody(`${ctx.base}/loop`, {follow: 3})
    assert.unreachable('a redirect loop was followed forever')
  } catch (err) {
    assert.is((err as {type?: string}).type, 'max-redirect')
  }
})

test('an error answer is readable as text; an abort stops a body mid-way; a refused connection keeps its code', async () => {
  const missing = await getBody(`${ctx.base}/nothing`)
  assert.is(missing.status, 404)
  assert.is(missing.ok, false)
  assert.is(missing.headers.get('Content-Type'), 'application/json')
  assert.match(await missing.text(), /BLOB_UNKNOWN/)
  const controller = new AbortController()
  const res = await getBody(`${ctx.base}/length`, {signal: controller.signal})
  let read = 0
  try {
    for await (const piece of res.body) {
      read += piece.length
      if (read > 1 << 20) controller.abort()
    }
    assert.unreachable('the body went on after the abort')
  } catch (err) {
    assert.is((err as Error).name, 'AbortError')
  }
  assert.ok(read < big.length)
  try {
    await getBody('http://127.0.0.1:1/x')
    assert.unreachable('connected to a closed port')
  } catch (err) {
    assert.is((err as {code?: string}).code, 'ECONNREFUSED')
  }
})

test('pipeInto: a Content-Length body lands straight in the sink, read by read, and waits while the sink is busy', async () => {
  const {sink, state, finish} = ringSink()
  const res = await getBody(`${ctx.base}/length`)
  await res.pipeInto(sink)
  assert.is(state.bytes, big.length)
  assert.is(await finish(), bigSha)
  assert.ok(state.waits > 0, 'the sink never made the reader wait')
  // only what came with the head (and the read chosen before the sink took over) is copied
  assert.ok(state.copied < 1 << 20, `${state.copied} of ${big.length} bytes were copied`)
})

test('pipeInto: chunked, read-until-close and TLS bodies are copied into the sink intact', async () => {
  for (const [url, opts, sha] of [
    [`${ctx.base}/chunked`, {}, bigSha],
    [`${ctx.base}/close`, {}, createHash('sha256').update(big.subarray(0, 3 << 20)).digest('hex')],
    [`${ctx.tlsBase}/length`, {tls: {ca: [ctx.ca]}}, bigSha],
  ] as const) {
    const {sink, finish} = ringSink()
    await (await getBody(url, opts)).pipeInto(sink)
    assert.is(await finish(), sha, url)
  }
})

test('pipeInto: a body cut short, a sink that refuses more bytes, an abort: each fails, and nothing reaches the sink after', async () => {
  const cut = ringSink()
  try {
    await (await getBody(`${ctx.base}/cut`)).pipeInto(cut.sink)
    assert.unreachable('a truncated body ended normally')
  } catch (err) {
    assert.is((err as {code?: string}).code, 'ERR_STREAM_PREMATURE_CLOSE')
  }
  cut.state.closed = true

  const refusing = ringSink()
  const took = refusing.sink.took
  refusing.sink.took = (n) => {
    if (refusing.state.bytes + n > 2 << 20) throw new Error('too many bytes')
    return took(n)
  }
  try {
    await (await getBody(`${ctx.base}/length`)).pipeInto(refusing.sink)
    assert.unreachable('the sink refused bytes and the body went on')
  } catch (err) {
    assert.is((err as Error).message, 'too many bytes')
  }
  refusing.state.closed = true

  const controller = new AbortController()
  const aborted = ringSink()
  const res = await getBody(`${ctx.base}/length`, {signal: controller.signal})
  setTimeout(() => controller.abort(), 1)
  const slow = aborted.sink.took
  aborted.sink.took = (n) => slow(n) ?? sleep(1)
  try {
    await res.pipeInto(aborted.sink)
    assert.unreachable('the body went on after the abort')
  } catch (err) {
    assert.is((err as Error).name, 'AbortError')
  }
  aborted.state.closed = true
  assert.ok(aborted.state.bytes < big.length)
  await sleep(50)
  assert.is(cut.state.late + refusing.state.late + aborted.state.late, 0)
})

test.run()
