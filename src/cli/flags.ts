import {Flags} from '@oclif/core'

/** Flags several commands share, so their names and help stay the same everywhere. */
export const trustedKeyFlag = Flags.string({
  char: 'k',
  description: 'Public key (armored OpenPGP file) to trust; repeat for several. One valid signature from any of them is enough.',
  multiple: true,
})

export const storeFlag = Flags.string({
  description: 'Blob store (a cache of everything fetched). Default: $FERRY_STORE, else $XDG_CACHE_HOME/ferry or ~/.cache/ferry.',
})
