import net from 'node:net'
import tls from 'node:tls'

/**
 * A GET for large bodies (artifacts and image layers, up to tens of GiB) that reads the socket
 * into one reused buffer per connection. Node's HTTP client allocates a fresh 64 KiB buffer for
 * every socket read and copies each body piece once more; V8 frees those only after tens of MiB
 * have piled up, which is most of a build's memory. Here a plain-HTTP read lands in the
 * connection's own buffer, body pieces are handed out as views of it, and the socket stays
 * paused until the consumer asks for the next piece: no per-read garbage, and natural
 * backpressure. A consumer that has buffers of its own (the blob writer's slabs) can take the
 * body with `pipeInto`: each read then lands straight in the region it names next, so body bytes
 * are never copied in user space. (Over TLS, decrypted pieces are copied into a second reused
 * buffer: TLS decrypts ahead of a pause.)
 *
 * HTTP/1.1 only, one request per connection (`Connection: close`): bodies this large make a
 * handshake per request negligible. Content-Length, chunked and read-until-close bodies;
 * redirects (the Authorization header is not sent to another host). Everything else (small
 * documents, uploads, HEAD) goes through node-fetch.
 */

export interface BodyRequest {
  headers?: Record<string, string>
  /** extra CA certificates (PEM) and whether to check the server's certificate */
  tls?: {ca?: string[]; rejectUnauthorized?: boolean}
  signal?: AbortSignal
  /** redirects followed at most; default 10 */
  follow?: number
}

/**
 * Where a body can be read straight into (a writer's buffers): each socket read lands in the
 * region last given, so the bytes are never copied in user space.
 */
export interface BodySink {
  /** where the next bytes go (at least one byte); it stays free until `took` says otherwise */
  region(): Uint8Array
  /** `n` bytes landed at the start of the last region; when a promise comes back, nothing more is read into the sink until it settles */
  took(n: number): Promise<void> | undefined
}

export interface BodyResponse {
  status: number
  statusText: string
  ok: boolean
  /** the URL answered, after redirects */
  url: string
  headers: {get(name: string): string | null}
  /**
   * The body, piece by piece. Each piece is a view of the connection's read buffer and is valid
   * only until the next one is asked for: copy what must be kept.
   */
  body: AsyncIterable<Uint8Array>
  /**
   * Reads the body into `sink`, straight from the socket where the connection allows it (plain
   * HTTP with a Content-Length), else piece by piece copied in. Use either this or `body`.
   */
  pipeInto(sink: BodySink): Promise<void>
  /** the whole body as text (error answers, small documents) */
  text(): Promise<string>
  arrayBuffer(): Promise<ArrayBuffer>
  json(): Promise<unknown>
  /** closes the connection without reading the rest of the body */
  close(): void
}

const READ_BYTES = 256 << 10
const MAX_HEAD = 64 << 10
const REDIRECTS = new Set([301, 302, 303, 307, 308])
const CRLF2 = Buffer.from('\r\n\r\n')

/** Read buffers of closed connections, reused by the next ones. */
const spare: Buffer[] = []

/**
 * One TLS context per CA list: a context parses every certificate it is given (the system's
 * roots and the extra CA, some 150), and one per connection would parse them again each time
 * and hold a few MiB each until the garbage collector gets to them.
 */
const contexts = new WeakMap<string[], tls.SecureContext>()

function contextFor(ca: string[]): tls.SecureContext {
  let context = contexts.get(ca)
  if (!context) contexts.set(ca, (context = tls.createSecureContext({ca})))
  return context
}

function networkError(message: string, code: string): Error {
  return Object.assign(new Error(message), {code})
}

function abortError(): Error {
  return Object.assign(new Error('The operation was aborted.'), {name: 'AbortError', type: 'aborted', code: 'ABORT_ERR'})
}

interface Head {
  status: number
  statusText: string
  headers: Map<string, string>
}

function parseHead(bytes: Buffer): Head {
  const lines = bytes.toString('latin1').split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '')
  if (!m) throw networkError(`not an HTTP/1.1 answer: "${(lines[0] ?? '').slice(0, 60)}"`, 'HPE_INVALID_RESPONSE')
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    if (line === '') continue
    const colon = line.indexOf(':')
    if (colon <= 0) throw networkError(`malformed header line "${line.slice(0, 60)}"`, 'HPE_INVALID_HEADER_TOKEN')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    const had = headers.get(name)
    headers.set(name, had === undefined ? value : `${had}, ${value}`)
  }
  return {status: Number(m[1]), statusText: m[2] ?? '', headers}
}

type Framing = {kind: 'length'; left: number} | {kind: 'chunked'} | {kind: 'close'} | {kind: 'none'}

/** One request on its own connection; the body is read on demand. */
class Exchange {
  private readonly socket: net.Socket
  private readonly buffer: Buffer
  /** TLS only: where pieces are copied to, and how much of it is in use */
  private stage?: Buffer
  private staging = 0
  private head?: Head
  private headBytes: Buffer = Buffer.alloc(0)
  private framing: Framing = {kind: 'none'}
  /** chunked decoding: the size line read so far, the bytes left in the current chunk, where we are */
  private chunk = {line: '', left: 0, phase: 'size' as 'size' | 'data' | 'crlf' | 'trailer'}
  private readonly queue: Uint8Array[] = []
  private finished = false
  private failure?: Error
  private wake?: () => void
  private released = false
  /** the sink taking a body of known length over plain HTTP, and the region the next read lands in */
  private sink?: BodySink
  private region?: Uint8Array
  /** the sink asked to wait: the socket is paused until it is ready */
  private sinkWaits = false
  private sinkDone?: {resolve(): void; reject(e: Error): void}
  private readonly onHead: Promise<Head>
  private settleHead!: {resolve(h: Head): void; reject(e: Error): void}

  constructor(
    readonly url: URL,
    method: 'GET',
    headers: Record<string, string>,
    options: BodyRequest,
  ) {
    this.buffer = spare.pop() ?? Buffer.allocUnsafe(READ_BYTES)
    this.onHead = new Promise<Head>((resolve, reject) => (this.settleHead = {resolve, reject}))
    this.onHead.catch(() => undefined)
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80)
    const host = url.hostname.replace(/^\[|\]$/g, '')
    if (url.protocol === 'https:') {
      // TLS decrypts a whole network read at once, into the read buffer again and again, even
      // after a pause: each piece is copied into a staging buffer, whose views stay valid until
      // the consumer has taken them all (see staged()).
      this.stage = spare.pop() ?? Buffer.allocUnsafe(READ_BYTES)
      // With a sink, a piece is copied straight into it (flow() stages what it cannot take yet).
      const onread = {buffer: this.buffer, callback: (n: number, buf: Uint8Array) => void this.received(this.sink ? buf.subarray(0, n) : this.staged(buf.subarray(0, n)))}
      const secureContext = options.tls?.ca ? contextFor(options.tls.ca) : undefined
      this.socket = tls.connect({host, port, servername: net.isIP(host) ? undefined : host, secureContext, rejectUnauthorized: options.tls?.rejectUnauthorized ?? true, ALPNProtocols: ['http/1.1'], onread} as tls.ConnectionOptions)
    } else {
      // The buffer for each read is chosen right after the one before: the connection's own, or a sink's region.
      const onread = {buffer: () => this.nextBuffer(), callback: (n: number, buf: Uint8Array) => (buf === this.region ? this.landed(n) : this.received(buf.subarray(0, n)))}
      this.socket = net.connect({host, port, onread} as net.NetConnectOpts)
    }
    this.socket.setNoDelay(true)
    this.socket.on('error', (err) => this.fail(err))
    this.socket.on('end', () => this.ended())
    this.socket.on('close', () => this.ended())
    const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close']
    for (const [name, value] of Object.entries(headers)) {
      if (/^(host|connection)$/i.test(name)) continue
      if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new TypeError(`header ${name} holds a line break`)
      lines.push(`${name}: ${value}`)
    }
    this.socket.write(lines.join('\r\n') + '\r\n\r\n')
    const signal = options.signal
    if (signal) {
      if (signal.aborted) this.fail(abortError())
      else signal.addEventListener('abort', () => this.fail(abortError()), {once: true})
    }
  }

  /** Status and headers, once they arrived. */
  response(): Promise<Head> {
    return this.onHead
  }

  /**
   * A TLS piece copied out of the read buffer (which the next piece overwrites) into the stage;
   * a fresh copy in the rare case the stage is full (a burst decrypted after a pause).
   */
  private staged(bytes: Uint8Array): Uint8Array {
    const stage = this.stage!
    if (this.staging + bytes.length > stage.length) return Buffer.from(bytes)
    stage.set(bytes, this.staging)
    const view = stage.subarray(this.staging, this.staging + bytes.length)
    this.staging += bytes.length
    return view
  }

  /** Called by the socket with the bytes of one read, in the reused buffer. Returns false to pause. */
  private received(bytes: Uint8Array): boolean {
    if (this.failure || this.finished) return true
    try {
      if (!this.head) {
        // The head is copied out (it is small); body bytes read along with it come from that copy.
        this.headBytes = Buffer.concat([this.headBytes, bytes])
        const end = this.headBytes.indexOf(CRLF2)
        if (end < 0) {
          if (this.headBytes.length > MAX_HEAD) throw networkError('the answer head is larger than 64 KiB', 'HPE_HEADER_OVERFLOW')
          return true
        }
        const head = parseHead(this.headBytes.subarray(0, end))
        const rest = this.headBytes.subarray(end + 4)
        this.headBytes = Buffer.alloc(0)
        if (head.status >= 100 && head.status < 200) return rest.length ? this.received(Buffer.from(rest)) : true
        this.head = head
        this.framing = this.frame(head)
        this.settleHead.resolve(head)
        if (this.framing.kind === 'none' || (this.framing.kind === 'length' && this.framing.left === 0)) this.finish()
        else if (rest.length) this.take(rest)
      } else {
        this.take(bytes)
      }
    } catch (err) {
      this.fail(err as Error)
      return true
    }
    if (this.sink) return this.flow(undefined)
    if (this.queue.length === 0) return true
    this.socket.pause()
    this.wake?.()
    return false
  }

  /** The buffer the next socket read goes into: the sink's region while it takes a body of known length. */
  private nextBuffer(): Uint8Array {
    const f = this.framing
    if (this.sink && f.kind === 'length' && f.left > 0 && this.queue.length === 0 && !this.failure) {
      const region = this.sink.region()
      this.region = region.length > f.left ? region.subarray(0, f.left) : region
      return this.region
    }
    this.region = undefined
    return this.buffer
  }

  /** `n` body bytes a read put straight into the sink's region. Returns false to pause. */
  private landed(n: number): boolean {
    if (this.failure || this.finished) return true
    const f = this.framing as {kind: 'length'; left: number}
    f.left -= n
    let wait: Promise<void> | undefined
    try {
      wait = this.sink!.took(n)
    } catch (err) {
      this.fail(err as Error)
      return true
    }
    if (f.left === 0) this.finish()
    return this.flow(wait)
  }

  /** Copies queued pieces (read into the connection's buffer) into the sink; stops where the sink asks to wait. */
  private drain(): Promise<void> | undefined {
    const sink = this.sink!
    while (this.queue.length > 0) {
      const piece = this.queue[0]
      const region = sink.region()
      const n = Math.min(region.length, piece.length)
      region.set(n === piece.length ? piece : piece.subarray(0, n))
      if (n === piece.length) this.queue.shift()
      else this.queue[0] = piece.subarray(n)
      const wait = sink.took(n)
      if (wait) return wait
    }
    // every staged piece is in the sink: the stage is free again
    this.staging = 0
    return undefined
  }

  /** TLS: queued pieces still in the read buffer, which the next decrypted piece overwrites, are copied to the stage. */
  private stageQueue(): void {
    if (!this.stage) return
    const read = this.buffer
    for (const [i, piece] of this.queue.entries()) {
      if (piece.buffer === read.buffer && piece.byteOffset >= read.byteOffset && piece.byteOffset < read.byteOffset + read.length) this.queue[i] = this.staged(piece)
    }
  }

  /**
   * Keeps bytes moving into the sink: copies what is queued, and pauses the socket while the sink
   * waits (then carries on). Returns whether the socket may go on reading now.
   */
  private flow(wait: Promise<void> | undefined): boolean {
    if (this.sinkWaits && !wait) {
      // TLS goes on decrypting what it had received after a pause: kept until the sink is ready
      this.stageQueue()
      return false
    }
    try {
      wait ??= this.drain()
    } catch (err) {
      this.fail(err as Error)
      return true
    }
    if (!wait) {
      this.sinkCheck()
      return true
    }
    this.stageQueue()
    this.sinkWaits = true
    this.socket.pause()
    wait.then(
      () => {
        this.sinkWaits = false
        if (this.failure) return
        if (this.flow(undefined) && !this.finished) this.socket.resume()
      },
      (err: Error) => this.fail(err),
    )
    return false
  }

  /** The sink has the whole body once it is read, copied in and nothing is waited for. */
  private sinkCheck(): void {
    if (this.sinkDone && this.finished && this.queue.length === 0 && !this.sinkWaits) this.sinkDone.resolve()
  }

  private frame(head: Head): Framing {
    if (head.status === 204 || head.status === 304) return {kind: 'none'}
    if (/\bchunked\b/i.test(head.headers.get('transfer-encoding') ?? '')) return {kind: 'chunked'}
    const length = head.headers.get('content-length')
    if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw networkError(`bad Content-Length "${length}"`, 'HPE_INVALID_CONTENT_LENGTH')
      return {kind: 'length', left: Number(length)}
    }
    return {kind: 'close'}
  }

  /** Splits body bytes by the framing into queued views. */
  private take(bytes: Uint8Array): void {
    const f = this.framing
    if (f.kind === 'close') {
      this.queue.push(bytes)
    } else if (f.kind === 'length') {
      const n = Math.min(f.left, bytes.length)
      if (n > 0) this.queue.push(bytes.subarray(0, n))
      f.left -= n
      if (f.left === 0) this.finish()
    } else if (f.kind === 'chunked') {
      this.dechunk(bytes)
    }
  }

  private dechunk(bytes: Uint8Array): void {
    const c = this.chunk
    let at = 0
    while (at < bytes.length && !this.finished) {
      if (c.phase === 'data') {
        const n = Math.min(c.left, bytes.length - at)
        this.queue.push(bytes.subarray(at, at + n))
        at += n
        c.left -= n
        if (c.left === 0) c.phase = 'crlf'
        continue
      }
      // size, crlf and trailer phases read lines
      const nl = bytes.indexOf(0x0a, at)
      const piece = Buffer.from(bytes.buffer, bytes.byteOffset + at, (nl < 0 ? bytes.length : nl) - at).toString('latin1')
      at = nl < 0 ? bytes.length : nl + 1
      c.line += piece
      if (c.line.length > 4096) throw networkError('a chunk line is too long', 'HPE_INVALID_CHUNK_SIZE')
      if (nl < 0) break
      const line = c.line.replace(/\r$/, '')
      c.line = ''
      if (c.phase === 'crlf') {
        if (line !== '') throw networkError('a chunk does not end with CRLF', 'HPE_INVALID_CHUNK_SIZE')
        c.phase = 'size'
      } else if (c.phase === 'size') {
        const m = /^([0-9a-fA-F]+)(;.*)?$/.exec(line)
        if (!m) throw networkError(`bad chunk size "${line.slice(0, 20)}"`, 'HPE_INVALID_CHUNK_SIZE')
        c.left = Number.parseInt(m[1], 16)
        c.phase = c.left === 0 ? 'trailer' : 'data'
      } else if (line === '') {
        this.finish()
      }
    }
  }

  private finish(): void {
    if (this.finished) return
    this.finished = true
    this.wake?.()
    this.sinkCheck()
  }

  private ended(): void {
    if (this.finished || this.failure) return
    if (!this.head) this.fail(networkError('the server closed the connection before answering', 'ECONNRESET'))
    else if (this.framing.kind === 'close') this.finish()
    else this.fail(networkError('the connection closed before the body ended', 'ERR_STREAM_PREMATURE_CLOSE'))
  }

  private fail(err: Error): void {
    if (this.failure || (this.finished && this.queue.length === 0 && this.released)) return
    this.failure = err
    this.settleHead.reject(err)
    this.sinkDone?.reject(err)
    this.wake?.()
    this.release()
  }

  /** Closes the connection and gives the buffer back once nothing can read it any more. */
  release(): void {
    if (this.released) return
    this.released = true
    this.queue.length = 0
    this.socket.destroy()
    // The socket may still be inside a read into the buffer: hand it on only after the close.
    this.socket.once('close', () => {
      for (const b of [this.buffer, this.stage]) if (b && spare.length < 32) spare.push(b)
    })
  }

  async pipeInto(sink: BodySink): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        this.sinkDone = {resolve, reject}
        if (this.failure) return reject(this.failure)
        this.sink = sink
        // What was read along with the head is copied in; from the next read on, a body of known
        // length lands in the sink (over TLS, and for chunked or read-until-close bodies, each
        // piece is copied in once).
        if (this.flow(undefined) && !this.finished) this.socket.resume()
      })
    } catch (err) {
      // No read may land in the sink once this returns: wait for the socket to be closed.
      this.release()
      if (!this.socket.closed) await new Promise((resolve) => this.socket.once('close', resolve))
      throw err
    } finally {
      this.sink = undefined
      this.release()
    }
  }

  async *pieces(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        const next = this.queue.shift()
        if (next) {
          yield next
          continue
        }
        if (this.failure) throw this.failure
        if (this.finished) return
        // Every piece handed out is done with (the consumer asks for the next): the stage is free again.
        this.staging = 0
        await new Promise<void>((resolve) => {
          this.wake = resolve
          this.socket.resume()
        })
        this.wake = undefined
      }
    } finally {
      this.release()
    }
  }
}

function respond(exchange: Exchange, head: Head): BodyResponse {
  const body = exchange.pieces()
  const all = async (): Promise<Buffer> => {
    const parts: Buffer[] = []
    for await (const piece of body) parts.push(Buffer.from(piece))
    return Buffer.concat(parts)
  }
  return {
    status: head.status,
    statusText: head.statusText,
    ok: head.status >= 200 && head.status < 300,
    url: exchange.url.toString(),
    headers: {get: (name: string) => head.headers.get(name.toLowerCase()) ?? null},
    body,
    pipeInto: (sink) => exchange.pipeInto(sink),
    text: async () => (await all()).toString('utf8'),
    arrayBuffer: async () => {
      const b = await all()
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer
    },
    json: async () => JSON.parse((await all()).toString('utf8')),
    close: () => exchange.release(),
  }
}

/** GETs `url` for a body read piece by piece; follows redirects. Rejects on network failures only. */
export async function getBody(url: string, request: BodyRequest = {}): Promise<BodyResponse> {
  let target = new URL(url)
  let headers = {...request.headers}
  for (let hops = 0; ; hops++) {
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      throw Object.assign(new Error(`redirected to a ${target.protocol} URL`), {type: 'invalid-redirect'})
    }
    const exchange = new Exchange(target, 'GET', headers, request)
    let head: Head
    try {
      head = await exchange.response()
    } catch (err) {
      exchange.release()
      throw err
    }
    const location = head.headers.get('location')
    if (!REDIRECTS.has(head.status) || location === undefined) return respond(exchange, head)
    exchange.release()
    if (hops >= (request.follow ?? 10)) throw Object.assign(new Error(`more than ${request.follow ?? 10} redirects`), {type: 'max-redirect'})
    let next: URL
    try {
      next = new URL(location, target)
    } catch {
      throw Object.assign(new Error(`redirected to "${location}", which is not a URL`), {type: 'invalid-redirect'})
    }
    // Credentials meant for one host are not handed to another (a registry's blob storage).
    if (next.host !== target.host) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'))
    target = next
  }
}
