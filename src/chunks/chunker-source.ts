/**
 * The content-defined chunker, as plain JavaScript in a string: the chunk worker evaluates it
 * (so it runs the same from the compiled package and from TypeScript sources) and so does the
 * main thread (see chunker.ts). One copy of the algorithm, two places it runs.
 *
 * FastCDC-style: a 32-bit gear hash `fp = (fp << 1) + gear[byte]` rolled over the bytes of the
 * current chunk from its `min`-th byte on; a cut falls where the top bits of `fp` are all zero,
 * with more bits required before `avg` and fewer after (normalised chunking), and at `max` at
 * the latest. A cut depends only on the bytes since the previous cut, so an insertion moves the
 * chunks it touches and the next one or two, never the rest of the file.
 *
 * The hash's inner loop runs in a small WebAssembly module (gear-wasm.ts) that computes exactly
 * what the JavaScript loop below computes, about twice as fast; the JavaScript loop stays as the
 * reference (`engine: 'js'`), and the tests hold the two to the same cuts.
 *
 * `makeChunker(params, createHash, engine)` returns `{push(bytes), end()}`; both return the chunks
 * finished so far as a Buffer of 36-byte records (sha256, then the length as uint32 LE).
 */
import {GEAR_INPUT_OFFSET, GEAR_WINDOW, gearWasmBytes} from './gear-wasm.js'

export const CHUNKER_SOURCE = `
const GEAR_INPUT_OFFSET = ${GEAR_INPUT_OFFSET}
const GEAR_WINDOW = ${GEAR_WINDOW}
let gearModule
function gearScanner(table) {
  gearModule ??= new WebAssembly.Module(Buffer.from('${Buffer.from(gearWasmBytes()).toString('base64')}', 'base64'))
  const {scan, mem, h} = new WebAssembly.Instance(gearModule).exports
  new Int32Array(mem.buffer, 0, 256).set(table)
  return {scan, h, input: new Uint8Array(mem.buffer, GEAR_INPUT_OFFSET, GEAR_WINDOW)}
}
function gearTable(seed) {
  // splitmix32: a fixed, documented sequence, so every build of Ferry cuts at the same places
  // signed: values above 2^31 read from a Uint32Array would leave the fast integer path
  const table = new Int32Array(256)
  let s = seed >>> 0
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    table[i] = z ^ (z >>> 16)
  }
  // Zero bytes add nothing: the hash of a run of zeros is 0, so a zero run (free space in a disk
  // image) is cut every min + 1 bytes into equal chunks, and a change inside one disturbs only
  // the chunks beside it.
  table[0] = 0
  return table
}
function topBits(n) {
  return n <= 0 ? 0 : n >= 32 ? 0xffffffff : (0xffffffff << (32 - n)) >>> 0
}
function makeChunker(params, createHash, engine = 'wasm') {
  const gear = gearTable(params.seed)
  const wasm = engine === 'wasm' ? gearScanner(gear) : undefined
  const bits = Math.round(Math.log2(params.avg))
  const maskS = topBits(bits + params.level) | 0
  const maskL = topBits(bits - params.level) | 0
  const min = params.min, avg = params.avg, max = params.max
  let hash = createHash('sha256')
  let length = 0
  let fp = 0
  let out = []
  const cut = () => {
    const record = Buffer.allocUnsafe(36)
    hash.digest().copy(record, 0)
    record.writeUInt32LE(length, 32)
    out.push(record)
    hash = createHash('sha256')
    length = 0
    fp = 0
  }
  const take = () => {
    const done = out.length === 1 ? out[0] : Buffer.concat(out)
    out = []
    return done
  }
  const chunker = {
    push(bytes) {
      if (wasm && bytes.length > GEAR_WINDOW) {
        const parts = []
        for (let at = 0; at < bytes.length; at += GEAR_WINDOW) parts.push(chunker.push(bytes.subarray(at, at + GEAR_WINDOW)))
        return Buffer.concat(parts)
      }
      if (wasm) wasm.input.set(bytes)
      const n = bytes.length
      let start = 0
      let i = 0
      while (i < n) {
        // the first min bytes of a chunk are never a cut: skip them unrolled
        if (length + (i - start) < min) {
          const skip = Math.min(n - i, min - length - (i - start))
          i += skip
          if (i >= n) break
        }
        const limit = Math.min(n, i + (max - length - (i - start)))
        const soft = Math.min(limit, i + Math.max(0, avg - length - (i - start)))
        let found = -1
        let h = fp
        if (wasm) {
          found = wasm.scan(i, soft, limit, h, maskS, maskL)
          if (found < 0) h = wasm.h.value
        } else {
          let j = i
          for (; j < soft; j++) {
            h = ((h << 1) + gear[bytes[j]]) | 0
            if ((h & maskS) === 0) { found = j + 1; break }
          }
          if (found < 0) {
            for (; j < limit; j++) {
              h = ((h << 1) + gear[bytes[j]]) | 0
              if ((h & maskL) === 0) { found = j + 1; break }
            }
          }
        }
        if (found < 0 && limit - start + length >= max) found = limit
        if (found < 0) {
          fp = h
          i = limit
          break
        }
        hash.update(bytes.subarray(start, found))
        length += found - start
        cut()
        start = found
        i = found
      }
      if (start < n) {
        hash.update(bytes.subarray(start, n))
        length += n - start
      }
      return take()
    },
    end() {
      if (length > 0) cut()
      return take()
    },
  }
  return chunker
}
`
