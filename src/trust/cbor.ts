// A small CBOR decoder (RFC 8949), enough for COSE_Sign1 envelopes: integers, byte and text
// strings, arrays, maps, tags and simple values, definite lengths only, bounded depth.

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: unknown,
  ) {}
}

export type CborValue = number | Buffer | string | CborValue[] | Map<unknown, unknown> | CborTag | boolean | null | undefined

const MAX_DEPTH = 16

/** Decodes one CBOR item that fills `bytes` exactly; throws on anything malformed or unsupported. */
export function decodeCbor(bytes: Buffer): CborValue {
  let at = 0
  const need = (n: number) => {
    if (at + n > bytes.length) throw new Error('truncated CBOR')
  }
  const length = (info: number): number => {
    if (info < 24) return info
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0
    if (!size) throw new Error('indefinite or reserved CBOR length')
    need(size)
    let n = 0
    for (let i = 0; i < size; i++) n = n * 256 + bytes[at + i]
    at += size
    if (!Number.isSafeInteger(n)) throw new Error('CBOR integer too large')
    return n
  }
  const item = (depth: number): CborValue => {
    if (depth > MAX_DEPTH) throw new Error('CBOR nested too deep')
    need(1)
    const first = bytes[at++]
    const major = first >> 5
    const info = first & 31
    if (major === 7) {
      if (info === 20) return false
      if (info === 21) return true
      if (info === 22) return null
      if (info === 23) return undefined
      throw new Error('unsupported CBOR simple value')
    }
    const n = length(info)
    switch (major) {
      case 0:
        return n
      case 1:
        return -1 - n
      case 2:
      case 3: {
        need(n)
        const slice = bytes.subarray(at, at + n)
        at += n
        return major === 2 ? Buffer.from(slice) : slice.toString('utf8')
      }
      case 4: {
        const out: CborValue[] = []
        for (let i = 0; i < n; i++) out.push(item(depth + 1))
        return out
      }
      case 5: {
        const out = new Map<unknown, unknown>()
        for (let i = 0; i < n; i++) {
          const k = item(depth + 1)
          out.set(k, item(depth + 1))
        }
        return out
      }
      default:
        return new CborTag(n, item(depth + 1))
    }
  }
  const value = item(0)
  if (at !== bytes.length) throw new Error('trailing bytes after the CBOR item')
  return value
}

/** Encodes the few shapes a COSE Sig_structure needs: text, byte strings and arrays of them. */
export function encodeCbor(value: string | Buffer | Array<string | Buffer>): Buffer {
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.from([(major << 5) | n])
    if (n < 0x100) return Buffer.from([(major << 5) | 24, n])
    if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff])
    const b = Buffer.alloc(5)
    b[0] = (major << 5) | 26
    b.writeUInt32BE(n, 1)
    return b
  }
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map((v) => encodeCbor(v))])
  if (typeof value === 'string') {
    const b = Buffer.from(value, 'utf8')
    return Buffer.concat([head(3, b.length), b])
  }
  return Buffer.concat([head(2, value.length), value])
}
