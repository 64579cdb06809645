// Builds real signed bundles of plain files for the media and delta tests: files served by the loopback
// file server, locked and built through the same code as `ferry bundle build`.
import {createHash, randomBytes} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {buildBundle, type BuildResult} from '../../src/bundle/build.js'
import {startFileServer, type FileServer} from '../../src/demo/file-server.js'
import {lockManifest, writeLock} from '../../src/manifest/lock.js'
import type {LockFile} from '../../src/manifest/lock-format.js'
import {BlobStore} from '../../src/store/blob-store.js'
import {generateKeyPair, writeKeyPair} from '../../src/trust/keys.js'
import {fileSigner} from '../../src/trust/sign.js'

/** One file artifact: `seed` names its bytes, so the same seed in two builds is the same blob. */
export interface TestFile {
  name: string
  size: number
  seed: string
}

export interface BuiltTestBundle extends BuildResult {
  lock: LockFile
  lockPath: string
}

export interface BundleFactory {
  dir: string
  pub: string
  priv: string
  store: BlobStore
  /** `images`: references as a manifest gives them, e.g. oci:/abs/layout:tag */
  build(version: string, files: TestFile[], extra?: {since?: Parameters<typeof buildBundle>[1]['since']; outDir?: string; images?: string[]}): Promise<BuiltTestBundle>
  close(): Promise<void>
}

async function writeRandom(path: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  async function* chunks() {
    for (let left = size; left > 0; left -= 1 << 20) {
      const block = randomBytes(Math.min(left, 1 << 20))
      hash.update(block)
      yield block
    }
  }
  await pipeline(chunks(), createWriteStream(path))
  return hash.digest('hex')
}

export async function makeBundleFactory(dir: string, name = 'usb-site'): Promise<BundleFactory> {
  const upstream = join(dir, 'upstream')
  await mkdir(upstream, {recursive: true})
  const server: FileServer = await startFileServer({root: upstream})
  const keys = await writeKeyPair(join(dir, 'keys'), 'release', await generateKeyPair({name: 'Release', date: new Date(Date.now() - 3600_000)}))
  const store = new BlobStore(join(dir, 'store'))
  const sums = new Map<string, string>()
  return {
    dir,
    pub: keys.public,
    priv: keys.private,
    store,
    async build(version, files, extra = {}) {
      const lines = []
      for (const f of files) {
        const file = join(upstream, `${f.seed}.bin`)
        if (!sums.has(f.seed) || !(await stat(file).catch(() => undefined))) sums.set(f.seed, await writeRandom(file, f.size))
        lines.push(`    - {url: ${server.url}/${f.seed}.bin, sha256: ${sums.get(f.seed)}, dest: files/${f.name}, name: ${f.name}}`)
      }
      const manifest = join(dir, `${name}-${version}.yaml`)
      await writeFile(
        manifest,
        `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: ${name}, version: ${version}}\nspec:\n  platforms: [linux/amd64]\n  expiresIn: 30d\n  files:\n${lines.join('\n')}\n${extra.images?.length ? `  images:\n${extra.images.map((i) => `    - ${i}`).join('\n')}\n` : ''}`,
      )
      const lock = await lockManifest(manifest, {store})
      const lockPath = join(dir, `${name}-${version}.lock.json`)
      await writeLock(lock, lockPath)
      const built = await buildBundle(lock, {store, signers: [await fileSigner(keys.private)], outDir: extra.outDir ?? join(dir, 'out'), ...(extra.since ? {since: extra.since} : {})})
      return {...built, lock, lockPath}
    },
    async close() {
      await server.close()
      await rm(dir, {recursive: true, force: true})
    },
  }
}
