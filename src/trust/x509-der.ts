// The few bits of an X.509 certificate node:crypto does not expose: the key usage extension
// (RFC 5280 4.2.1.3). A small DER walker, enough to find one extension and read its bit string.

interface Tlv {
  tag: number
  /** where the value starts and ends in the buffer */
  start: number
  end: number
}

function readTlv(der: Buffer, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error('truncated DER')
  const tag = der[at]
  let len = der[at + 1]
  let start = at + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4 || start + n > limit) throw new Error('bad DER length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]
    start += n
  }
  if (start + len > limit) throw new Error('truncated DER')
  return {tag, start, end: start + len}
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  for (let at = parent.start; at < parent.end; ) {
    const t = readTlv(der, at, parent.end)
    out.push(t)
    at = t.end
  }
  return out
}

/** OID 2.5.29.15, DER-encoded */
const KEY_USAGE_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x0f])

/** The key usage bits named by RFC 5280, in bit order. */
export const KEY_USAGE_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const
export type KeyUsageBit = (typeof KEY_USAGE_BITS)[number]

/**
 * The key usages a DER certificate's key usage extension grants; undefined when it has none.
 * Certificate → TBSCertificate → [3] extensions → Extension {extnID, critical?, extnValue OCTET STRING(BIT STRING)}.
 */
export function keyUsage(der: Buffer): Set<KeyUsageBit> | undefined {
  const cert = readTlv(der, 0, der.length)
  const tbs = children(der, cert)[0]
  const wrapper = children(der, tbs).find((t) => t.tag === 0xa3)
  if (!wrapper) return undefined
  const [list] = children(der, wrapper)
  for (const ext of children(der, list)) {
    const parts = children(der, ext)
    const oid = parts[0]
    if (!der.subarray(oid.start - 2, oid.end).equals(KEY_USAGE_OID)) continue
    const octets = parts[parts.length - 1]
    const bits = readTlv(der, octets.start, octets.end)
    if (bits.tag !== 0x03 || bits.end - bits.start < 1) throw new Error('bad key usage extension')
    const out = new Set<KeyUsageBit>()
    const bytes = der.subarray(bits.start + 1, bits.end)
    KEY_USAGE_BITS.forEach((name, i) => {
      const byte = bytes[i >> 3]
      if (byte !== undefined && byte & (0x80 >> (i & 7))) out.add(name)
    })
    return out
  }
  return undefined
}
