/** Small helpers shared by the key, sign and verify code: telling armored from binary data, naming keys. */

const ARMOR_BEGIN = /^\s*-----BEGIN PGP /

/** True when the bytes are ASCII armor (possibly after leading whitespace) rather than binary packets. */
export function isArmored(data: Uint8Array | string): boolean {
  const head = typeof data === 'string' ? data.slice(0, 256) : Buffer.from(data.subarray(0, 256)).toString('latin1')
  return ARMOR_BEGIN.test(head)
}

/** Every armored block of the given kind in a text, in order (a file may hold several keys one after another). */
export function armoredBlocks(text: string, kind: 'PUBLIC KEY BLOCK' | 'PRIVATE KEY BLOCK' | 'SIGNATURE'): string[] {
  const re = new RegExp(`-----BEGIN PGP ${kind}-----[\\s\\S]*?-----END PGP ${kind}-----`, 'g')
  return text.match(re) ?? []
}

/** The armor kinds present in a text, e.g. ["PUBLIC KEY BLOCK", "SIGNATURE"]. */
export function armorKinds(text: string): string[] {
  return [...text.matchAll(/-----BEGIN PGP ([A-Z ,/0-9]+)-----/g)].map((m) => m[1])
}

/** Fingerprints and key ids are shown as uppercase hex without spaces, as `gpg --with-colons` prints them. */
export function hexId(value: string | Uint8Array): string {
  const hex = typeof value === 'string' ? value : Buffer.from(value).toString('hex')
  return hex.replace(/\s+/g, '').toUpperCase()
}

/** The first line of an error's message, without openpgp.js's prefixes repeated by wrapping. */
export function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.split('\n')[0]
}
