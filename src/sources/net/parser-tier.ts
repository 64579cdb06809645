import {setFlagsFromString} from 'node:v8'

/**
 * undici parses HTTP/1.1 with llhttp compiled to WebAssembly, once per process, when its first
 * connection opens. Left to V8's defaults, the parser's one large function is soon recompiled by
 * the optimizing compiler, which for about 150 ms holds some 30 MiB outside the JavaScript heap:
 * the peak memory of a whole build. The baseline code parses as fast for what Ferry does (large
 * bodies, few headers), so modules compiled while the first request is in flight stay baseline
 * only; V8 reads these flags when a module is compiled, and they are back to V8's defaults once
 * that request has an answer (or failed), so other WebAssembly (the chunker's gear loop, which
 * does gain from the optimizing compiler) is compiled as usual.
 */
let state: 'before' | 'pending' | 'done' = 'before'

/** Runs the first request with the parser kept on baseline code; later requests just run. */
export async function withBaselineParser<T>(request: () => Promise<T>): Promise<T> {
  if (state !== 'before') return request()
  state = 'pending'
  setFlagsFromString('--no-wasm-dynamic-tiering')
  setFlagsFromString('--no-wasm-tier-up')
  try {
    return await request()
  } finally {
    setFlagsFromString('--wasm-tier-up')
    setFlagsFromString('--wasm-dynamic-tiering')
    state = 'done'
  }
}
