import {Flags} from '@oclif/core'
import {useProxyFlag} from '../sources/net/proxy-env.js'

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

/**
 * `--proxy URL` for every command that fetches or pushes. Giving it is enough: the value becomes
 * the proxy of every request the command makes (see sources/net/proxy-env.ts), over HTTPS_PROXY,
 * HTTP_PROXY and ALL_PROXY; NO_PROXY still applies. A URL that is not a proxy URL is exit 2.
 */
export const proxyFlag = Flags.string({
  description: 'Proxy for every request, http://[user:password@]host:port (https:// too); over HTTPS_PROXY, HTTP_PROXY and ALL_PROXY, while NO_PROXY still applies. Without it those variables are read as curl reads them.',
  helpValue: 'URL',
  parse: async (value) => {
    useProxyFlag(value)
    return value
  },
})
