// Transport: every request Ferry makes (undici underneath). Real servers on loopback, plain and TLS
// with a CA made by openssl: body framings, slow consumers and backpressure, redirects and the
// Authorization header, idle timeouts, streamed uploads.
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
import {IdleTimeout, RedirectError} from '../src/sources/net/net-errors.js'
import {proxySettings} from '../src/sources/net/proxy-env.js'
import {type HttpAnswer, Transport} from '../src/sources/net/transport.js'

const test = suite('transport')
const big = randomBytes(12 << 20)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const bigSha = sha(big)
const ctx = {} as {
  dir: string
  servers: Server[]
  base: string
  otherBase: string
  tlsBase: string
  ca: string
  seen: Array<string | undefined>
  /** bytes the /huge handler got into its socket so far */
  hugeSent: number
  uploaded?: Buffer
}
const direct = () => new Transport({proxy: proxySettings(undefined, {})})

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
    res.socket!.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n')
    res.socket!.end(big.subarray(0, 3 << 20))
  } else if (url === '/huge') {
    // 256 MiB offered as fast as the socket takes them: a paused reader must hold it back
    const piece = Buffer.alloc(1 << 20)
    let left = 256
    res.setHeader('content-length', 256 << 20)
    const step = (): void => {
      while (left > 0) {
        left--
        ctx.hugeSent += piece.length
        if (!res.write(piece)) return void res.once('drain', step)
      }
      res.end()
    }
    step()
  } else if (url === '/stall') {
    res.setHeader('content-length', 1000)
    res.write(Buffer.alloc(10))
  } else if (url === '/silent') {
    // never answers
  } else if (url === '/upload') {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => {
      ctx.uploaded = Buffer.concat(parts)
      res.writeHead(201)
      res.end()
    })
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
  ctx.servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** Keeps every chunk as it came, reading slowly: the chunks are the reader's, so none may change later. */
async function keepAll(res: HttpAnswer): Promise<Buffer> {
  const kept: Buffer[] = []
  let turn = 0
  for await (const chunk of res.body) {
    if (turn++ % 7 === 0) await sleep(1)
    kept.push(chunk)
  }
  return Buffer.concat(kept)
}

test.before(async () => {
  ctx.seen = []
  ctx.servers = []
  ctx.hugeSent = 0
  ctx.dir = mkdtempSync(join(tmpdir(), 'ferry-transport-'))
  const key = join(ctx.dir, 'key.pem')
  const cert = join(ctx.dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], {stdio: 'ignore'})
  ctx.ca = readFileSync(cert, 'utf8')
  ctx.base = `http://127.0.0.1:${await listen(createHttp(handler))}`
  ctx.otherBase = `http://localhost:${await listen(createHttp(handler))}`
  ctx.tlsBase = `https://localhost:${await listen(createHttps({key: readFileSync(key), cert: readFileSync(cert)}, handler))}`
})

test.after(() => {
  for (const s of ctx.servers) s.closeAllConnections?.()
  for (const s of ctx.servers) s.close()
  rmSync(ctx.dir, {recursive: true, force: true})
})

test('Content-Length, chunked and read-until-close bodies arrive whole, each chunk kept as it came', async () => {
  const t = direct()
  const res = await t.send(`${ctx.base}/length`)
  assert.is(res.status, 200)
  assert.is(res.headers.get('content-length'), String(big.length))
  assert.is(sha(await keepAll(res)), bigSha)
  assert.is(sha(await keepAll(await t.send(`${ctx.base}/chunked`))), bigSha)
  assert.is(sha(await keepAll(await t.send(`${ctx.base}/close`))), sha(big.subarray(0, 3 << 20)))
  await t.close()
})

test('TLS: trusted with the CA given, refused without it', async () => {
  const trusting = new Transport({proxy: proxySettings(undefined, {}), tls: {ca: [ctx.ca]}})
  assert.is(sha(await keepAll(await trusting.send(`${ctx.tlsBase}/length`))), bigSha)
  const plain = direct()
  try {
    await plain.send(`${ctx.tlsBase}/length`)
    assert.unreachable('a certificate from an unknown CA was accepted')
  } catch (err) {
    assert.match(String((err as {code?: string}).code), /CERT|SELF_SIGNED|UNABLE_TO/)
  }
  const unchecked = new Transport({proxy: proxySettings(undefined, {}), tls: {rejectUnauthorized: false}})
  assert.is((await unchecked.send(`${ctx.tlsBase}/nothing`)).status, 404)
  await Promise.all([trusting.close(), plain.close(), unchecked.close()])
})

test('a paused reader holds the sender back: the server cannot push the whole body ahead', async () => {
  const t = direct()
  const res = await t.send(`${ctx.base}/huge`)
  const it = res.body[Symbol.asyncIterator]()
  await it.next()
  await sleep(500)
  // socket buffers on both sides hold a few MiB at most; without backpressure all 256 MiB go out
  assert.ok(ctx.hugeSent < 64 << 20, `the server pushed ${ctx.hugeSent} bytes to a reader that stopped`)
  let rest = 0
  for (let r = await it.next(); !r.done; r = await it.next()) rest += r.value.length
  assert.ok(rest > 0)
  await t.close()
})

test('read buffers do not pile up: reading 256 MiB keeps at most a few MiB of dropped socket buffers alive', async () => {
  const t = direct()
  const res = await t.send(`${ctx.base}/huge`)
  const before = process.memoryUsage().arrayBuffers
  let most = 0
  let n = 0
  let bytes = 0
  for await (const chunk of res.body) {
    bytes += chunk.length
    // each chunk dropped at once, as the blob writer drops it after copying it in
    if (++n % 8 === 0) most = Math.max(most, process.memoryUsage().arrayBuffers - before)
  }
  assert.is(bytes, 256 << 20)
  // V8 by itself collects them only after some 64 MiB of them
  assert.ok(most < 24 << 20, `${(most / 1048576).toFixed(1)} MiB of ArrayBuffers were alive while reading`)
  await t.close()
})

test('redirects: followed to the final URL; Authorization kept on the same host, dropped for another; a loop ends', async () => {
  const t = direct()
  ctx.seen = []
  const same = await t.send(`${ctx.base}/redirect-same`, {headers: {Authorization: 'Bearer t'}})
  assert.is(same.url, `${ctx.base}/length`)
  same.close()
  assert.equal(ctx.seen, ['Bearer t', 'Bearer t'])
  ctx.seen = []
  const other = await t.send(`${ctx.base}/redirect-other`, {headers: {Authorization: 'Bearer t'}})
  assert.is(other.url, `${ctx.otherBase}/length`)
  assert.is(sha(await keepAll(other)), bigSha)
  assert.equal(ctx.seen, ['Bearer t', undefined])
  const manual = await t.send(`${ctx.base}/redirect-same`, {follow: 0})
  assert.is(manual.status, 307)
  assert.is(manual.headers.get('location'), '/length')
  manual.close()
  try {
    await t.send(`${ctx.base}/loop`, {follow: 3})
    assert.unreachable('a redirect loop was followed forever')
  } catch (err) {
    assert.instance(err, RedirectError)
    assert.is((err as RedirectError).type, 'max-redirect')
  }
  await t.close()
})

test('idle timeouts: no headers, or a body that stops, fail with IdleTimeout', async () => {
  const t = direct()
  try {
    await t.send(`${ctx.base}/silent`, {idleMs: 300})
    assert.unreachable('waited forever for headers')
  } catch (err) {
    assert.instance(err, IdleTimeout)
  }
  const res = await t.send(`${ctx.base}/stall`, {idleMs: 300})
  try {
    await keepAll(res)
    assert.unreachable('waited forever for the body')
  } catch (err) {
    assert.instance(err, IdleTimeout)
  }
  await t.close()
})

test('an upload from an async iterable arrives byte for byte', async () => {
  const t = direct()
  const body = (async function* () {
    for (let i = 0; i < big.length; i += 1_000_003) yield big.subarray(i, i + 1_000_003)
  })()
  const res = await t.send(`${ctx.base}/upload`, {method: 'PUT', headers: {'content-length': String(big.length)}, body})
  assert.is(res.status, 201)
  res.close()
  assert.is(sha(ctx.uploaded!), bigSha)
  await t.close()
})

test('an unreachable host rejects with the socket error', async () => {
  const t = direct()
  try {
    await t.send('http://127.0.0.1:1/x')
    assert.unreachable('connected to a closed port')
  } catch (err) {
    assert.is((err as {code?: string}).code, 'ECONNREFUSED')
  }
  await t.close()
})

test.run()
