import {createHash} from 'node:crypto'
import {Worker} from 'node:worker_threads'
import {CHUNKER_SOURCE} from './chunker-source.js'
import {ChunkIndex} from './index-format.js'
import {CHUNK_PARAMS, type ChunkParams} from './params.js'

/** A streaming chunker: feed bytes in order; each call returns the 36-byte records of the chunks it finished. */
export interface Chunker {
  push(bytes: Uint8Array): Buffer
  end(): Buffer
}

/** `wasm`: the gear loop in WebAssembly (the default, fast); `js`: the reference loop in JavaScript (same cuts) */
export type ChunkerEngine = 'wasm' | 'js'
type MakeChunker = (params: ChunkParams, hash: typeof createHash, engine?: ChunkerEngine) => Chunker
const makeChunker = new Function(`${CHUNKER_SOURCE}\nreturn makeChunker`)() as MakeChunker

/** A chunker on this thread (tests, small inputs); big files go to the chunk worker (chunkFile). */
export function createChunker(params: ChunkParams = CHUNK_PARAMS, engine: ChunkerEngine = 'wasm'): Chunker {
  return makeChunker(params, createHash, engine)
}

const WORKER_SOURCE = `
const {parentPort} = require('node:worker_threads')
const {createHash} = require('node:crypto')
const {openSync, readSync, closeSync} = require('node:fs')
${CHUNKER_SOURCE}
parentPort.on('message', (m) => {
  let fd
  try {
    const chunker = makeChunker(m.params, createHash)
    fd = openSync(m.path, 'r')
    const buffer = Buffer.allocUnsafe(1 << 20)
    const parts = []
    let at = 0
    while (at < m.length) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, m.length - at), m.start + at)
      if (n === 0) break
      at += n
      const done = chunker.push(n === buffer.length ? buffer : buffer.subarray(0, n))
      if (done.length) parts.push(done)
    }
    parts.push(chunker.end())
    const records = Buffer.concat(parts)
    const out = new Uint8Array(records)
    parentPort.postMessage({ticket: m.ticket, size: at, records: out.buffer}, [out.buffer])
  } catch (err) {
    parentPort.postMessage({ticket: m.ticket, error: String((err && err.message) || err), code: err && err.code})
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
})
`

interface Answer {
  ticket: number
  size?: number
  records?: ArrayBuffer
  error?: string
  code?: string
}

let worker: Worker | undefined
let tickets = 0
const waiting = new Map<number, {resolve(a: Answer): void; reject(err: Error): void}>()

function chunkWorker(): Worker {
  if (worker) return worker
  const w = new Worker(WORKER_SOURCE, {eval: true, execArgv: []})
  w.on('message', (m: Answer) => {
    const waiter = waiting.get(m.ticket)
    waiting.delete(m.ticket)
    if (waiting.size === 0) w.unref()
    waiter?.resolve(m)
  })
  const fail = (err: Error) => {
    worker = undefined
    for (const waiter of waiting.values()) waiter.reject(err)
    waiting.clear()
  }
  w.on('error', fail)
  w.on('exit', (code) => fail(new Error(`chunk worker exited (${code})`)))
  w.unref()
  worker = w
  return w
}

/**
 * Chunks a whole file on the chunk worker thread, which reads it itself (1 MiB at a time, so
 * memory stays flat): the main thread stays free for downloads and the archive. Returns the
 * chunk records (36 bytes each) and the bytes read. `start`, `length`: a region of the file (a
 * blob inside a pack of the store).
 */
export function chunkFile(path: string, params: ChunkParams = CHUNK_PARAMS, start = 0, length = Number.MAX_SAFE_INTEGER): Promise<{records: Buffer; size: number}> {
  const w = chunkWorker()
  const ticket = ++tickets
  return new Promise<Answer>((resolve, reject) => {
    if (waiting.size === 0) w.ref()
    waiting.set(ticket, {resolve, reject})
    w.postMessage({ticket, path, start, length, params: {...params}})
  }).then((m) => {
    if (m.error !== undefined) throw Object.assign(new Error(`chunking ${path}: ${m.error}`), m.code ? {code: m.code} : {})
    return {records: Buffer.from(m.records!), size: m.size!}
  })
}

/** The chunk index of a file, chunked on the chunk worker. */
export async function indexFile(path: string, region: {start: number; length: number} = {start: 0, length: Number.MAX_SAFE_INTEGER}, params: ChunkParams = CHUNK_PARAMS): Promise<ChunkIndex> {
  const {records, size} = await chunkFile(path, params, region.start, region.length)
  return ChunkIndex.fromRecords(params, size, records)
}
