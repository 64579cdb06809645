import {createReadStream} from 'node:fs'
import {realpath, stat} from 'node:fs/promises'
import {createServer, type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'

/** Read size when streaming a file: big reads keep the server out of the way of what it serves. */
const READ_CHUNK = 1 << 20

/** How the file server may misbehave on purpose when a test hook asks it to. */
export interface ServeOptions {
  /** answer 200 with the whole file even when the request carries a Range header */
  ignoreRange?: boolean
  /** send only this many bytes of the body (headers still announce the full length), then cut */
  cutAfter?: number
  /** how to cut: `close` ends the connection cleanly (FIN), `reset` aborts it (RST); default `close` */
  cutHow?: 'close' | 'reset'
}

/** What a test hook learns about a request, and a way to serve it normally or with faults. */
export interface InterceptContext {
  /** decoded request path, e.g. `/k3s/sha256sum-amd64.txt` */
  path: string
  /** the regular file under the root that the path names, if any */
  file?: string
  /** how many requests this path has received, this one included (1 for the first) */
  hit: number
  /** serve the file as the server would, optionally with faults; resolves when the response is done */
  serve(options?: ServeOptions): Promise<void>
}

/** A test hook: return true when it has answered the request itself. */
export type Intercept = (req: IncomingMessage, res: ServerResponse, ctx: InterceptContext) => boolean | Promise<boolean>

export interface FileServerOptions {
  /** folder served at `/` */
  root: string
  intercept?: Intercept
  /** request path → path (or absolute URL) to answer with a 302 */
  redirects?: Record<string, string>
  /** port on 127.0.0.1; default 0, an ephemeral port */
  port?: number
}

/** One request as the server saw it, in arrival order. */
export interface RequestRecord {
  method: string
  path: string
  range?: string
}

export interface FileServer {
  /** base URL, no trailing slash, e.g. `http://127.0.0.1:41234` */
  url: string
  port: number
  requests: RequestRecord[]
  close(): Promise<void>
}

type ByteRange = {start: number; end: number}

/** Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; undefined when absent or not one range. */
function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === '')) return undefined
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return {start: Math.max(0, size - suffix), end: size - 1}
  }
  const start = Number(m[1])
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (start >= size || end < start) return 'unsatisfiable'
  return {start, end}
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers})
  res.end(text)
}

function writeChunk(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve())))
}

async function serveFile(req: IncomingMessage, res: ServerResponse, file: string, size: number, options: ServeOptions = {}): Promise<void> {
  const range = options.ignoreRange ? undefined : parseRange(req.headers.range, size)
  if (range === 'unsatisfiable') return plain(res, 416, 'range not satisfiable\n', {'Content-Range': `bytes */${size}`})
  const start = range?.start ?? 0
  const end = range?.end ?? size - 1
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': end - start + 1,
    'Accept-Ranges': 'bytes',
  }
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`
  res.writeHead(range ? 206 : 200, headers)
  if (req.method === 'HEAD' || size === 0) return void res.end()

  if (options.cutAfter === undefined) {
    await pipeline(createReadStream(file, {start, end, highWaterMark: READ_CHUNK}), res)
    return
  }
  // Fault path: send a prefix of the body, make sure it left, then cut the connection.
  const last = Math.min(end, start + options.cutAfter - 1)
  if (last >= start) {
    for await (const chunk of createReadStream(file, {start, end: last, highWaterMark: READ_CHUNK})) await writeChunk(res, chunk as Buffer)
  } else {
    res.flushHeaders()
  }
  const socket = res.socket
  if (!socket) return
  if (options.cutHow === 'reset') socket.resetAndDestroy()
  else socket.end()
}

/** Maps a URL path onto a regular file under root; 'outside' for traversal attempts. */
async function resolveFile(root: string, urlPath: string): Promise<{file: string; size: number} | 'outside' | undefined> {
  if (urlPath.includes('\0')) return 'outside'
  const candidate = path.resolve(root, '.' + urlPath)
  if (candidate !== root && !candidate.startsWith(root + path.sep)) return 'outside'
  let real: string
  try {
    real = await realpath(candidate)
  } catch {
    return undefined
  }
  // A link inside the root must not lead out of it either.
  if (real !== root && !real.startsWith(root + path.sep)) return 'outside'
  const info = await stat(real)
  return info.isFile() ? {file: real, size: info.size} : undefined
}

/**
 * Starts an HTTP server on 127.0.0.1 (an ephemeral port unless one is given) that serves a folder with GET/HEAD and byte
 * ranges, streaming from disk. Used by `ferry demo`, the tests and the benchmark.
 */
export async function startFileServer(options: FileServerOptions): Promise<FileServer> {
  const root = await realpath(path.resolve(options.root))
  const requests: RequestRecord[] = []
  const hits = new Map<string, number>()

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let urlPath: string
    try {
      urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname)
    } catch {
      return plain(res, 400, 'bad request path\n')
    }
    const method = req.method ?? 'GET'
    requests.push(req.headers.range === undefined ? {method, path: urlPath} : {method, path: urlPath, range: req.headers.range})
    const hit = (hits.get(urlPath) ?? 0) + 1
    hits.set(urlPath, hit)

    if (method !== 'GET' && method !== 'HEAD') return plain(res, 405, 'method not allowed\n', {Allow: 'GET, HEAD'})
    const target = options.redirects?.[urlPath]
    if (target !== undefined) return plain(res, 302, `see ${target}\n`, {Location: target})

    const found = await resolveFile(root, urlPath)
    if (found === 'outside') return plain(res, 403, 'forbidden\n')
    if (options.intercept) {
      const ctx: InterceptContext = {
        path: urlPath,
        file: found?.file,
        hit,
        serve: (serveOptions) => (found ? serveFile(req, res, found.file, found.size, serveOptions) : Promise.resolve(plain(res, 404, 'not found\n'))),
      }
      if (await options.intercept(req, res, ctx)) return
    }
    if (!found) return plain(res, 404, 'not found\n')
    await serveFile(req, res, found.file, found.size)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      // The client went away or the file vanished mid-stream: nothing more can be said on this response.
      if (!res.headersSent) plain(res, 500, 'internal error\n')
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const {port} = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()))
        server.closeAllConnections()
      }),
  }
}
