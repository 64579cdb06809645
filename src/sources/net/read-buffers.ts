// Memory of downloads. Every socket read hands over a fresh buffer (up to 64 KiB) that V8 counts
// only as external memory: the few bytes of its JS object barely fill the young generation, so
// no collection comes until some 64 MiB of such buffers have piled up, long after each was
// copied out and dropped. A young-generation collection every few MiB of body read frees them
// while they are still young (well under a millisecond each), which keeps a build's peak memory
// flat instead of tens of MiB above it. (Bodies that go into the blob store are also collected
// for there, by the blob writer; this covers every body, stored or not.)
import {collectYoung} from '../../store/young-gc.js'

/** Body bytes read between two young-generation collections. */
const EVERY = 4 << 20

let since = 0

/** Counts body bytes taken from a socket; now and then frees the read buffers already dropped. */
export function bodyBytesRead(bytes: number): void {
  since += bytes
  if (since < EVERY) return
  since = 0
  collectYoung()
}
