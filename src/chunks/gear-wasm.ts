/**
 * The gear hash's inner loop as a tiny WebAssembly module, written out byte by byte here (no
 * toolchain, no native addon): the chunker copies its input into the module's memory and lets
 * `scan` look for the next cut. It computes exactly what the JavaScript loop of
 * chunker-source.ts computes, about twice as fast.
 *
 * The module, as text:
 *
 *   (module
 *     (memory (export "mem") PAGES)            ;; bytes 0…1023: the gear table (256 × i32), then the input
 *     (global $h (export "h") (mut i32) (i32.const 0))
 *     (func (export "scan") (param $j i32) (param $soft i32) (param $limit i32)
 *                           (param $h i32) (param $maskS i32) (param $maskL i32) (result i32)
 *       ;; h = (h << 1) + gear[input[j]], j = j + 1, until (h & mask) = 0: returns j (the cut
 *       ;; falls before input[j]); with maskS while j < soft, then with maskL while j < limit;
 *       ;; none found: $h keeps h for the next call, and the result is -1
 *       (block $s (loop $ls
 *         (br_if $s (i32.ge_u (local.get $j) (local.get $soft)))
 *         (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
 *                                (i32.load (i32.shl (i32.load8_u offset=1024 (local.get $j)) (i32.const 2)))))
 *         (local.set $j (i32.add (local.get $j) (i32.const 1)))
 *         (if (i32.eqz (i32.and (local.get $h) (local.get $maskS))) (then (return (local.get $j))))
 *         (br $ls)))
 *       … the same loop with $limit and $maskL …
 *       (global.set $h (local.get $h))
 *       (i32.const -1)))
 */

/** Input bytes start here in the module's memory; the gear table sits below. */
export const GEAR_INPUT_OFFSET = 1024
/** Input bytes one call of the chunker copies in at most (the module's memory holds them and the table). */
export const GEAR_WINDOW = 1 << 20
const PAGES = Math.ceil((GEAR_INPUT_OFFSET + GEAR_WINDOW) / 65536)

const op = {
  block: 0x02, loop: 0x03, if: 0x04, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f, void: 0x40,
  localGet: 0x20, localSet: 0x21, localTee: 0x22, globalSet: 0x24,
  i32Load: 0x28, i32Load8u: 0x2d, i32Const: 0x41, i32Eqz: 0x45, i32GtU: 0x4b, i32Add: 0x6a, i32And: 0x71, i32Shl: 0x74,
}
const I32 = 0x7f

function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n) b |= 0x80
    out.push(b)
  } while (n)
  return out
}

const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'latin1')]
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body]
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()]

// parameters and the one local, by index
const J = 0, SOFT = 1, LIMIT = 2, H = 3, MASK_S = 4, MASK_L = 5

/** h = (h << 1) + gear[input[j + k]]; if (h & mask) = 0, return j + k + 1. */
function step(k: number, mask: number): number[] {
  return [
    op.localGet, H, op.i32Const, 1, op.i32Shl,
    op.localGet, J, op.i32Load8u, 0, ...uleb(GEAR_INPUT_OFFSET + k),
    op.i32Const, 2, op.i32Shl, op.i32Load, 2, 0,
    op.i32Add, op.localTee, H,
    op.localGet, mask, op.i32And, op.i32Eqz,
    op.if, op.void, op.localGet, J, op.i32Const, k + 1, op.i32Add, op.return, op.end,
  ]
}

/**
 * One phase of the scan: while j < bound, roll the hash and return once (h & mask) = 0. Eight
 * bytes a turn while eight remain (one bound check for eight steps), then byte by byte.
 */
function phase(bound: number, mask: number): number[] {
  const loop = (width: number) => [
    op.block, op.void,
    op.loop, op.void,
    op.localGet, J, op.i32Const, width, op.i32Add, op.localGet, bound, op.i32GtU, op.brIf, 1,
    ...Array.from({length: width}, (_, k) => step(k, mask)).flat(),
    op.localGet, J, op.i32Const, width, op.i32Add, op.localSet, J,
    op.br, 0,
    op.end,
    op.end,
  ]
  return [...loop(8), ...loop(1)]
}

/** The module's bytes. */
export function gearWasmBytes(): Uint8Array {
  const body = [
    0, // no locals beyond the parameters
    ...phase(SOFT, MASK_S),
    ...phase(LIMIT, MASK_L),
    op.localGet, H, op.globalSet, 0,
    op.i32Const, 0x7f, // -1
    op.end,
  ]
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 6, I32, I32, I32, I32, I32, I32, 1, I32]])),
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, ...uleb(PAGES)]])),
    ...section(6, vec([[I32, 1, op.i32Const, 0, op.end]])),
    ...section(7, vec([[...name('scan'), 0x00, 0], [...name('mem'), 0x02, 0], [...name('h'), 0x03, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]
  return Uint8Array.from(bytes)
}
