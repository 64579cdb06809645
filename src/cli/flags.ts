import {Flags} from '@oclif/core'

/** Flags several commands share, so their names and help stay the same everywhere. */
export const trustedKeyFlag = Flags.string({
  char: 'k',
  description: 'Public key (armored OpenPGP file) to trust; repeat for several. One valid signature from any of them is enough.',
  multiple: true, multipleNonGreedy: true,
})

/** Every device command works under this folder, so a test sandbox and a real device run the same code. */
export const rootFlag = Flags.string({
  char: 'r',
  description: 'The device\'s root folder; Ferry keeps its state under <root>/var/lib/ferry and reads <root>/etc/ferry/device.yaml.',
  default: '/',
})

export const storeFlag = Flags.string({
  description: 'Blob store (a cache of everything fetched). Default: $FERRY_STORE, else $XDG_CACHE_HOME/ferry or ~/.cache/ferry.',
})

/** TLS and trust options for OCI registries (images in a manifest, bundle push). */
export const registryFlags = {
  'ca-file': Flags.string({description: 'CA certificate (PEM) to trust for registries, besides the system CAs.'}),
  'insecure-registry': Flags.string({
    description: 'Registry (host[:port]) whose TLS certificate is not checked and that may answer in plain HTTP; repeat for several. Loopback registries may always use plain HTTP.',
    multiple: true,
    multipleNonGreedy: true,
  }),
}

/** The registry options those flags give. */
export function registryOptions(flags: {'ca-file'?: string; 'insecure-registry'?: string[]}): {caFile?: string; insecure?: string[]} {
  return {...(flags['ca-file'] ? {caFile: flags['ca-file']} : {}), ...(flags['insecure-registry'] ? {insecure: flags['insecure-registry']} : {})}
}
