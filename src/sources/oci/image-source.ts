import {configPlatform, MAX_CONFIG, type Descriptor, type Platform} from './document.js'
import {openLayoutSource} from './layout-source.js'
import type {ImageReference} from './reference.js'
import type {RegistryOptions} from './registry-client.js'
import {RegistryPool} from './registry-source.js'
import type {ImageSource} from './source-types.js'

export type {FetchedDocument, ImageSource} from './source-types.js'


/** Opens image sources, sharing one client (connections, tokens) per registry. */
export class ImageSources {
  readonly registries: RegistryPool

  constructor(options: RegistryOptions = {}) {
    this.registries = new RegistryPool(options)
  }

  async open(ref: ImageReference): Promise<ImageSource> {
    if (ref.transport === 'registry') return this.registries.source(ref)
    return openLayoutSource(ref)
  }
}

/** The one platform a single-manifest image runs on, as its config names it; undefined when it names none (or the config is too large to be one). */
export async function manifestPlatform(source: ImageSource, config: Descriptor): Promise<Platform | undefined> {
  return config.size <= MAX_CONFIG ? configPlatform(await source.config(config)) : undefined
}
