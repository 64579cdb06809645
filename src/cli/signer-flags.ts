import {Flags} from '@oclif/core'
import {noSignerError} from '../errors.js'
import {fileSigner, gpgSigner, type Signer} from '../trust/sign.js'

/** How a build signs: key files read by openpgp.js, or keys held by gpg (agent, smartcard, HSM). */
export const signerFlags = {
  key: Flags.string({char: 'k', description: 'Private key file (armored OpenPGP) to sign with; repeat for several signers.', multiple: true, multipleNonGreedy: true}),
  'gpg-key': Flags.string({description: 'Fingerprint of a key held by gpg (gpg-agent, smartcard) to sign with; repeat for several.', multiple: true, multipleNonGreedy: true}),
  'passphrase-env': Flags.string({description: 'Name of the environment variable holding the private key passphrase.'}),
}

/** The signers those flags name, in the order given: key files first, then gpg keys. */
export async function signersFrom(flags: {key?: string[]; 'gpg-key'?: string[]; 'passphrase-env'?: string}, what = 'a bundle'): Promise<Signer[]> {
  const passphrase = flags['passphrase-env'] ? process.env[flags['passphrase-env']] : undefined
  // Said before anything is locked or fetched.
  if (!flags.key?.length && !flags['gpg-key']?.length) throw noSignerError(what)
  const signers: Signer[] = []
  for (const file of flags.key ?? []) signers.push(await fileSigner(file, passphrase))
  for (const fpr of flags['gpg-key'] ?? []) signers.push(await gpgSigner(fpr))
  return signers
}
