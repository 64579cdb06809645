// Real registries on loopback for the image tests: Debian's docker-registry (distribution) with a
// config in a temp dir, optionally with htpasswd basic auth over TLS (a CA made with openssl), plus
// a small Node proxy in front of one that can corrupt a blob, drop a connection, demand Bearer
// tokens or serve a schema-1 manifest.
import {execFile, execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createNetServer} from 'node:net'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

export interface Registry {
  /** 127.0.0.1:<port> */
  host: string
  /** the CA that signed its certificate, when TLS */
  caFile?: string
  stop(): Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as {port: number}).port
      s.close(() => resolve(port))
    })
  })
}

function bcrypt(password: string): string {
  try {
    return execFileSync('htpasswd', ['-nbB', 'u', password]).toString().trim().split(':')[1]
  } catch {
    // Debian's python3 (3.11) still has the crypt module, whose libxcrypt does bcrypt.
    const py = "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))"
    return execFileSync('/usr/bin/python3', ['-W', 'ignore', '-c', py, password]).toString().trim()
  }
}

/** A CA and a server certificate for 127.0.0.1 and localhost, made with openssl. */
export function makeTls(dir: string): {ca: string; cert: string; key: string} {
  const f = (n: string) => join(dir, n)
  const ssl = (...args: string[]) => execFileSync('openssl', args, {stdio: 'ignore'})
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=ferry test CA')
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1')
  execFileSync('bash', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ${f('san.ext')}`])
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('san.ext'))
  return {ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key')}
}

export async function startRegistry(dir: string, opts: {user?: string; password?: string; tls?: boolean} = {}): Promise<Registry> {
  await mkdir(dir, {recursive: true})
  const port = await freePort()
  const tls = opts.tls ? makeTls(dir) : undefined
  let auth = ''
  if (opts.user) {
    await writeFile(join(dir, 'htpasswd'), `${opts.user}:${bcrypt(opts.password ?? '')}\n`)
    auth = `auth:\n  htpasswd:\n    realm: ferry-test\n    path: ${join(dir, 'htpasswd')}\n`
  }
  const config = join(dir, 'config.yml')
  await writeFile(
    config,
    `version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: ${join(dir, 'data')}}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:${port}
${tls ? `  tls:\n    certificate: ${tls.cert}\n    key: ${tls.key}\n` : ''}${auth}`,
  )
  const child: ChildProcess = spawn('docker-registry', ['serve', config], {stdio: ['ignore', 'ignore', 'pipe']})
  let log = ''
  child.stderr?.on('data', (d) => (log += d))
  let exited = false
  child.on('exit', () => (exited = true))
  const stop = async () => {
    if (exited) return
    child.kill('SIGTERM')
    for (let i = 0; i < 30 && !exited; i++) await sleep(100)
    if (!exited) child.kill('SIGKILL')
  }
  const host = `127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`docker-registry exited: ${log.slice(-2000)}`)
    const ok = await new Promise<boolean>((resolve) =>
      execFile('curl', ['-s', '-o', '/dev/null', '-k', `${tls ? 'https' : 'http'}://${host}/v2/`], (err) => resolve(!err)),
    )
    if (ok) return {host, caFile: tls?.ca, stop}
    await sleep(100)
  }
  await stop()
  throw new Error(`docker-registry did not start: ${log.slice(-2000)}`)
}

/** `skopeo copy` (images made by code go into a registry the way CI pushes them). */
export function skopeo(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('skopeo', args, {maxBuffer: 64 << 20}, (err, stdout, stderr) => (err ? reject(new Error(`skopeo ${args.join(' ')}: ${stderr}`)) : resolve(stdout))),
  )
}

/** The digest a registry gives for an image (`skopeo inspect`). */
export async function registryDigest(ref: string, extra: string[] = ['--tls-verify=false']): Promise<string> {
  return JSON.parse(await skopeo(['inspect', ...extra, `docker://${ref}`])).Digest
}

/** Runs mkimages.py: N images sharing a base layer, plus a multi-arch index "multi". */
export function makeImages(out: string, n: number, layers: number, layerMb: number, baseMb: number): void {
  const script = process.env.FERRY_MKIMAGES ?? '/work/shared/bench/mkimages.py'
  execFileSync('python3', [script, out, String(n), String(layers), String(layerMb), String(baseMb)], {stdio: 'ignore'})
}

export interface ProxyHooks {
  /** change one byte of this blob's body (every time) */
  corrupt?: string
  /** close the connection after this many body bytes of this blob, the first time only */
  dropAfter?: {digest: string; bytes: number}
  /** answer this manifest path (e.g. /v2/old/app/manifests/v1) with a schema-1 document */
  schema1Path?: string
  /**
   * demand Bearer tokens from /token, which takes these basic-auth credentials (GET), or this
   * refresh token in an OAuth2 refresh-token grant (POST, form-encoded)
   */
  bearer?: {user: string; password: string; refreshToken?: string}
  /** hold every blob GET this many ms before passing it on (so parallel fetches overlap visibly) */
  holdBlobs?: number
  /**
   * read request bodies slowly (a pause of this many ms after each piece), so the client's socket
   * backs up as it does towards a busy registry; upload URLs the registry hands out name the proxy
   */
  slowUploads?: number
}

export interface Proxy {
  host: string
  /** requests seen, "METHOD path" */
  seen: string[]
  /** tokens handed out */
  tokens: number
  /** most blob GETs in flight at once, and most repositories they were for at once */
  peakBlobs: number
  peakRepositories: number
  /** starts counting the peaks over */
  resetPeaks(): void
  close(): Promise<void>
}

/** A proxy in front of a plain-HTTP registry, with fault hooks. */
export async function startProxy(target: string, hooks: ProxyHooks = {}): Promise<Proxy> {
  const seen: string[] = []
  const state = {dropped: false, tokens: 0, peakBlobs: 0, peakRepositories: 0}
  const issued = new Set<string>()
  const inFlight = new Map<string, number>()
  let blobs = 0
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/'
    seen.push(`${req.method} ${path}`)
    const blobRepo = req.method === 'GET' ? /^\/v2\/(.+?)\/blobs\/sha256:/.exec(path)?.[1] : undefined
    if (blobRepo) {
      blobs++
      inFlight.set(blobRepo, (inFlight.get(blobRepo) ?? 0) + 1)
      state.peakBlobs = Math.max(state.peakBlobs, blobs)
      state.peakRepositories = Math.max(state.peakRepositories, inFlight.size)
      res.once('close', () => {
        blobs--
        const left = inFlight.get(blobRepo)! - 1
        if (left === 0) inFlight.delete(blobRepo)
        else inFlight.set(blobRepo, left)
      })
      if (hooks.holdBlobs) {
        const held = hooks
        setTimeout(() => forward(req, res, path, host()), held.holdBlobs)
        return
      }
    }
    forward(req, res, path, host())
  }
  const host = () => `127.0.0.1:${(server.address() as {port: number}).port}`
  const forward = (req: IncomingMessage, res: ServerResponse, path: string, host: string) => {
    if (hooks.bearer) {
      if (path.startsWith('/token') && req.method === 'POST') {
        let form = ''
        req.on('data', (d: Buffer) => (form += d))
        req.on('end', () => {
          const grant = new URLSearchParams(form)
          if (grant.get('grant_type') !== 'refresh_token' || !hooks.bearer!.refreshToken || grant.get('refresh_token') !== hooks.bearer!.refreshToken) {
            res.writeHead(401, {'content-type': 'application/json'}).end(JSON.stringify({details: 'invalid refresh token'}))
            return
          }
          const token = `t${++state.tokens}`
          issued.add(token)
          res.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify({access_token: token, expires_in: 300}))
        })
        return
      }
      if (path.startsWith('/token')) {
        const want = `Basic ${Buffer.from(`${hooks.bearer.user}:${hooks.bearer.password}`).toString('base64')}`
        if (req.headers.authorization !== want) {
          res.writeHead(401, {'content-type': 'application/json'}).end(JSON.stringify({details: 'incorrect username or password'}))
          return
        }
        const token = `t${++state.tokens}`
        issued.add(token)
        res.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify({token, expires_in: 300}))
        return
      }
      const auth = req.headers.authorization ?? ''
      if (!auth.startsWith('Bearer ') || !issued.has(auth.slice(7))) {
        const repo = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(path)?.[1]
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://${host}/token",service="ferry-test"${repo ? `,scope="repository:${repo}:pull"` : ''}`,
          'content-type': 'application/json',
        })
        res.end(JSON.stringify({errors: [{code: 'UNAUTHORIZED', message: 'authentication required'}]}))
        return
      }
    }
    if (hooks.schema1Path && path === hooks.schema1Path) {
      const body = JSON.stringify({schemaVersion: 1, name: 'old/app', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [], signatures: []})
      res.writeHead(200, {'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws'}).end(body)
      return
    }
    const headers = {...req.headers, host: hooks.slowUploads ? req.headers.host : target}
    delete headers.authorization
    const upstream = httpRequest({host: target.split(':')[0], port: Number(target.split(':')[1]), method: req.method, path, headers}, (up) => {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1]
      res.writeHead(up.statusCode ?? 502, up.headers)
      let sent = 0
      let flipped = false
      up.on('data', (chunk: Buffer) => {
        if (digest && digest === hooks.corrupt && !flipped) {
          chunk = Buffer.from(chunk)
          chunk[0] ^= 0xff
          flipped = true
        }
        if (digest && hooks.dropAfter?.digest === digest && !state.dropped && sent + chunk.length > hooks.dropAfter.bytes) {
          state.dropped = true
          res.write(chunk.subarray(0, hooks.dropAfter.bytes - sent))
          up.destroy()
          res.socket?.destroy()
          return
        }
        sent += chunk.length
        res.write(chunk)
      })
      up.on('end', () => res.end())
    })
    upstream.on('error', () => res.destroy())
    if (hooks.slowUploads) {
      const pause = hooks.slowUploads
      req.on('data', (chunk: Buffer) => {
        upstream.write(chunk)
        req.pause()
        setTimeout(() => req.resume(), pause)
      })
      req.on('end', () => upstream.end())
      return
    }
    req.pipe(upstream)
  }
  const server: Server = createServer(handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as {port: number}).port
  return {
    host: `127.0.0.1:${port}`,
    seen,
    get tokens() {
      return state.tokens
    },
    get peakBlobs() {
      return state.peakBlobs
    },
    get peakRepositories() {
      return state.peakRepositories
    },
    resetPeaks: () => {
      state.peakBlobs = 0
      state.peakRepositories = 0
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * Copies an OCI layout to `to` and gives `image` in the copy one more layer (a new file of
 * `bytes` random bytes) with umoci: its other layers stay as they were.
 */
export async function layoutWithNewLayer(from: string, to: string, image: string, bytes: number): Promise<void> {
  execFileSync('cp', ['-a', from, to])
  const rootfs = `${to}-unpacked`
  execFileSync('umoci', ['unpack', '--image', `${to}:${image}`, rootfs])
  await writeFile(join(rootfs, 'rootfs', 'patched.bin'), randomBytes(bytes))
  execFileSync('umoci', ['repack', '--image', `${to}:${image}`, rootfs])
}
