import {availableParallelism} from 'node:os'
import {Worker} from 'node:worker_threads'
import {CHUNKER_SOURCE} from '../chunks/chunker-source.js'
import type {ChunkParams} from '../chunks/params.js'

/**
 * sha256 on worker threads, so that reading, writing and network I/O on the main thread and
 * hashing run on different cores. Data travels in slabs backed by SharedArrayBuffers: a slab
 * handed to `update` is read in place by the worker and must not change until its promise settles.
 *
 * The worker's code is plain JavaScript evaluated as a string, so it runs the same from the
 * compiled package and from TypeScript sources.
 */
const WORKER_SOURCE = `
const {parentPort} = require('node:worker_threads')
const {createHash} = require('node:crypto')
const {readSync, writeSync} = require('node:fs')
${CHUNKER_SOURCE}
const hashes = new Map()
// hashes that also cut their bytes into chunks (a chunked artifact downloading): id -> {chunker, parts, only}
// (only: cut without hashing the whole, the whole being hashed on another thread meanwhile)
const chunkers = new Map()
let chunk
function hashOf(id) {
  let hash = hashes.get(id)
  if (!hash) hashes.set(id, (hash = createHash('sha256')))
  return hash
}
function feed(id, view) {
  const c = chunkers.get(id)
  if (!c || !c.only) hashOf(id).update(view)
  if (!c) return
  const done = c.chunker.push(view)
  if (done.length) c.parts.push(done)
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'update') {
      const view = new Uint8Array(m.buffer, m.offset, m.length)
      feed(m.id, view)
      // and written at its place, from this thread: no thread-pool hop, one writer per file
      if (m.fd !== undefined) {
        for (let done = 0; done < m.length; ) {
          const n = writeSync(m.fd, view, done, m.length - done, m.position + done)
          if (n === 0) throw Object.assign(new Error('the file system accepted no bytes'), {code: 'EIO'})
          done += n
        }
      }
      parentPort.postMessage({ticket: m.ticket})
    } else if (m.op === 'file') {
      // read here, in pieces that stay in the core's cache, then hashed: no round trip per piece
      chunk ??= Buffer.allocUnsafe(256 * 1024)
      let left = m.length
      let at = m.position
      while (left > 0) {
        const n = readSync(m.fd, chunk, 0, Math.min(chunk.length, left), at)
        if (n === 0) throw new Error('the file ends ' + left + ' bytes early')
        feed(m.id, n === chunk.length ? chunk : chunk.subarray(0, n))
        left -= n
        at += n
      }
      parentPort.postMessage({ticket: m.ticket})
    } else if (m.op === 'check') {
      // consecutive chunks of a slab against their sha256s: the index of the first that differs, or -1
      let at = m.offset
      let bad = -1
      for (let k = 0; k < m.lengths.length && bad < 0; at += m.lengths[k++]) {
        const got = createHash('sha256').update(new Uint8Array(m.buffer, at, m.lengths[k])).digest()
        if (!got.equals(m.expect.subarray(k * 32, k * 32 + 32))) bad = k
      }
      parentPort.postMessage({ticket: m.ticket, bad})
    } else if (m.op === 'chunk') {
      chunkers.set(m.id, {chunker: makeChunker(m.params, createHash), parts: [], only: m.only})
    } else if (m.op === 'digest') {
      const hash = hashes.get(m.id) ?? createHash('sha256')
      hashes.delete(m.id)
      const c = chunkers.get(m.id)
      chunkers.delete(m.id)
      if (!c) return parentPort.postMessage({ticket: m.ticket, digest: hash.digest('hex')})
      c.parts.push(c.chunker.end())
      const records = new Uint8Array(Buffer.concat(c.parts))
      parentPort.postMessage({ticket: m.ticket, digest: hash.digest('hex'), records: records.buffer}, [records.buffer])
    } else if (m.op === 'drop') {
      hashes.delete(m.id)
      chunkers.delete(m.id)
    }
  } catch (err) {
    parentPort.postMessage({ticket: m.ticket, error: String(err && err.message || err), code: err && err.code})
  }
})
`

interface Answer {
  ticket: number
  bad?: number
  digest?: string
  records?: ArrayBuffer
  error?: string
  code?: string
}

interface Waiter {
  resolve(value: Answer): void
  reject(err: Error): void
}

/** One worker thread; keeps the process alive only while it owes an answer. */
class HashThread {
  private readonly worker: Worker
  private readonly waiting = new Map<number, Waiter>()
  private failed?: Error
  /** hashes started here and not yet finished: the pool places new ones where this is lowest */
  open = 0

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, {eval: true, execArgv: []})
    this.worker.on('message', (m: Answer) => {
      const w = this.waiting.get(m.ticket)
      if (!w) return
      this.waiting.delete(m.ticket)
      if (this.waiting.size === 0) this.worker.unref()
      // a failed write keeps its errno code (ENOSPC, EIO, …) for the caller to map
      if (m.error !== undefined) w.reject(m.code ? Object.assign(new Error(m.error), {code: m.code}) : new Error(`sha256 worker: ${m.error}`))
      else w.resolve(m)
    })
    const fail = (err: Error) => {
      this.failed = err
      for (const w of this.waiting.values()) w.reject(err)
      this.waiting.clear()
    }
    this.worker.on('error', fail)
    this.worker.on('exit', (code) => fail(new Error(`sha256 worker exited (${code})`)))
    // After the listeners: adding a 'message' listener refs the port again.
    this.worker.unref()
  }

  call(message: Record<string, unknown>, ticket: number): Promise<Answer> {
    if (this.failed) return Promise.reject(this.failed)
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref()
      this.waiting.set(ticket, {resolve, reject})
      this.worker.postMessage({...message, ticket})
    })
  }

  send(message: Record<string, unknown>): void {
    if (!this.failed) this.worker.postMessage(message)
  }
}

let tickets = 0
let ids = 0

/** An incremental sha256 running on a worker; updates are applied in the order they are made. */
export class RemoteHash {
  private readonly id = ++ids
  private done = false
  size = 0
  /** after `digest`, when `chunk` was asked before any byte: the chunk records (36 bytes each) */
  records?: Buffer

  constructor(
    /** the worker thread this hash runs on */
    readonly thread: HashThread,
    /** how much of a thread this hash is expected to take (see `remoteHash`) */
    private readonly weight = 1,
  ) {
    thread.open += weight
  }

  /** Hashes `view` (backed by a SharedArrayBuffer); resolves once the worker has read it. */
  update(view: Uint8Array): Promise<void> {
    if (view.byteLength === 0) return Promise.resolve()
    if (!(view.buffer instanceof SharedArrayBuffer)) throw new TypeError('RemoteHash.update takes views of a SharedArrayBuffer')
    this.size += view.byteLength
    return this.thread.call({op: 'update', id: this.id, buffer: view.buffer, offset: view.byteOffset, length: view.byteLength}, ++tickets).then(() => undefined)
  }

  /**
   * Hashes `view` (as `update`) and writes it to the open file `fd` at `position`, both on the
   * worker; rejects with the write's errno code when the file system refuses the bytes.
   */
  updateAndWrite(view: Uint8Array, fd: number, position: number): Promise<void> {
    if (view.byteLength === 0) return Promise.resolve()
    if (!(view.buffer instanceof SharedArrayBuffer)) throw new TypeError('RemoteHash.updateAndWrite takes views of a SharedArrayBuffer')
    this.size += view.byteLength
    return this.thread.call({op: 'update', id: this.id, buffer: view.buffer, offset: view.byteOffset, length: view.byteLength, fd, position}, ++tickets).then(() => undefined)
  }

  /**
   * Hashes `length` bytes of the open file `fd` from `position`, read by the worker itself (no
   * round trip per piece, no thread-pool queue); applied in order with the other updates.
   */
  updateFromFile(fd: number, position: number, length: number): Promise<void> {
    if (length === 0) return Promise.resolve()
    this.size += length
    return this.thread.call({op: 'file', id: this.id, fd, position, length}, ++tickets).then(() => undefined)
  }

  /**
   * Also cuts the bytes into content-defined chunks (see chunks/chunker-source.ts) on the same
   * thread, as they are hashed: `records` holds them after `digest`. Only before any byte.
   * `only`: cut without hashing the whole (another hash does that, on another thread).
   */
  chunk(params: ChunkParams, options: {only?: boolean} = {}): void {
    if (this.size > 0) throw new Error('RemoteHash.chunk: bytes were hashed already')
    this.thread.send({op: 'chunk', id: this.id, params: {...params}, only: options.only === true})
  }

  /**
   * Checks consecutive chunks of `view` (on a SharedArrayBuffer), of these lengths, against their
   * sha256s (32 bytes each, in order), on this hash's thread; resolves with the position of the
   * first that differs, or -1. Stands apart from the running hash.
   */
  async checkChunks(view: Uint8Array, lengths: number[], expect: Uint8Array): Promise<number> {
    if (!(view.buffer instanceof SharedArrayBuffer)) throw new TypeError('RemoteHash.checkChunks takes views of a SharedArrayBuffer')
    const answer = await this.thread.call({op: 'check', buffer: view.buffer, offset: view.byteOffset, lengths, expect}, ++tickets)
    return answer.bad!
  }

  /** Finishes the hash: `sha256:<hex>`. Call once. */
  async digest(): Promise<string> {
    this.finish()
    const answer = await this.thread.call({op: 'digest', id: this.id}, ++tickets)
    if (answer.records) this.records = Buffer.from(answer.records)
    return `sha256:${answer.digest}`
  }

  /** Forgets the hash without finishing it. */
  drop(): void {
    if (this.done) return
    this.finish()
    this.thread.send({op: 'drop', id: this.id})
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.thread.open -= this.weight
  }
}

/** Worker threads shared by every hash of the process, started on first use. */
class HashPool {
  private threads?: HashThread[]

  hasher(weight: number, apart?: HashThread): RemoteHash {
    // One per core, two at least and four at most: a long hash (an archive's) takes one thread, the
    // blobs hashed and written as they arrive the others (`apart`: not the thread given, e.g. the one
    // that cuts the same bytes into chunks). A third thread on two cores runs no faster, and each
    // thread is a whole JavaScript engine (about 10 MiB resident).
    this.threads ??= Array.from({length: Math.min(4, Math.max(2, availableParallelism()))}, () => new HashThread())
    const threads = this.threads.filter((t) => t !== apart)
    let best = threads[0]
    for (const t of threads) if (t.open < best.open) best = t
    return new RemoteHash(best, weight)
  }
}

const pool = new HashPool()

/**
 * A new sha256 on the least busy worker thread. `long`: a hash everything else waits for (a whole
 * archive, hashed in order while blobs are hashed as they arrive): it counts as a thread's full
 * load, so the other hashes go to other threads and never queue in front of it. `apart`: on
 * another thread than that hash (the two run side by side over the same bytes).
 */
export function remoteHash(options: {long?: boolean; apart?: RemoteHash} = {}): RemoteHash {
  return pool.hasher(options.long ? 64 : 1, options.apart?.thread)
}

/** Reused SharedArrayBuffer-backed buffers, so that steady copying makes no garbage. */
const freeSlabs = new Map<number, Buffer[]>()
const KEEP_PER_SIZE = 16

/** A buffer of exactly `size` bytes on a SharedArrayBuffer (contents undefined). */
export function takeSlab(size: number): Buffer {
  const slab = freeSlabs.get(size)?.pop()
  return slab ?? Buffer.from(new SharedArrayBuffer(size))
}

/** Gives a slab back for reuse; nothing may still read or write it. */
export function returnSlab(slab: Buffer): void {
  let list = freeSlabs.get(slab.length)
  if (!list) freeSlabs.set(slab.length, (list = []))
  if (list.length < KEEP_PER_SIZE) list.push(slab)
}
