import {Args, Flags} from '@oclif/core'
import {resolve} from 'node:path'
import {BaseCommand} from '../../cli/base-command.js'
import {proxyFlag, registryFlags, registryOptions} from '../../cli/flags.js'
import {defaultLockPath, lockManifest, staleLegacyLock, writeLock} from '../../manifest/lock.js'
import {BlobStore} from '../../store/blob-store.js'
import {formatBytes} from '../../format.js'
import {artifactVersion} from '../../manifest/artifact-changes.js'

export default class ManifestLock extends BaseCommand {
  static summary = 'Resolve a manifest into a lock file: every artifact pinned to a URL, sha256 and size.'

  static description = `Reads the manifest, checks it, and asks upstream for every artifact: k3s and Kubernetes releases through their published checksum lists, VM images through their (signed) checksum files or, for an "oci:" entry, the registry digests of the artifact manifest and its disk layer (with "notation.ca", a Notary Project signature chaining to that root must sign the manifest), plain files through the sha256 the manifest pins. A k3s channel is resolved to the release it points at now, and every image under spec.images to the digest of its manifest or index, whose cosign signature is checked when the image (or a spec.cosign rule) names a key, the key that verified it recorded (registry credentials come from the files docker, podman and skopeo log in to: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json, and from the credential helpers they name in credHelpers or credsStore, docker-credential-NAME on PATH).

The lock records when it was resolved; building from the same lock gives the same bundle.`

  static examples = [
    {description: 'Lock a manifest; writes manifests/site.lock.json (named after the manifest)', command: '<%= config.bin %> manifest lock manifests/site.yaml'},
    {description: 'Write the lock elsewhere', command: '<%= config.bin %> manifest lock manifests/site.yaml --out build/site.lock.json'},
    {description: 'In a scheduled job: one JSON object on stdout', command: '<%= config.bin %> manifest lock manifests/site.yaml --json'},
  ]

  static args = {
    manifest: Args.string({description: 'manifest file (YAML)', required: true}),
  }

  static flags = {
    out: Flags.string({char: 'o', description: 'lock file to write [default: beside the manifest, named after it: site.yaml → site.lock.json]'}),
    store: Flags.string({description: 'blob store, used when an upstream gives no size [default: $FERRY_STORE or ~/.cache/ferry]'}),
    ...registryFlags,
    proxy: proxyFlag,
  }

  async run() {
    const {args, flags} = await this.parse(ManifestLock)
    const out = resolve(flags.out ?? defaultLockPath(resolve(args.manifest)))
    const lock = await lockManifest(args.manifest, {
      store: new BlobStore(BlobStore.defaultRoot(flags.store)),
      onProgress: this.progress(),
      registry: registryOptions(flags),
    })
    await writeLock(lock, out)
    // an image's size is all its blobs (the manifest's own bytes are a few hundred)
    const sizeOf = (a: (typeof lock.artifacts)[number]) => a.imageSize ?? a.size
    const bytes = lock.artifacts.reduce((sum, a) => sum + sizeOf(a), 0)
    const width = Math.max(...lock.artifacts.map((a) => a.name.length), 4)
    const vw = Math.max(...lock.artifacts.map((a) => (artifactVersion(a) ?? '-').length), 7)
    if (lock.artifacts.length) this.say(`  ${'name'.padEnd(width)}  ${'version'.padEnd(vw)}  ${'size'.padStart(10)}  ${'sha256'.padEnd(19)}  verified by`)
    for (const a of lock.artifacts) {
      this.say(`  ${a.name.padEnd(width)}  ${(artifactVersion(a) ?? '-').padEnd(vw)}  ${formatBytes(sizeOf(a)).padStart(10)}  sha256:${a.sha256.slice(0, 12)}  ${a.upstream.verifiedBy}`)
    }
    const n = lock.artifacts.length
    this.say(`Locked ${lock.name} ${lock.version}: ${n} artifact${n === 1 ? '' : 's'}, ${formatBytes(bytes)}, expires ${lock.expires}`)
    this.say(`Wrote ${out}`)
    const stale = flags.out ? undefined : await staleLegacyLock(resolve(args.manifest), lock, out)
    if (stale) this.warnLine(`note: ${stale} is an older lock of ${lock.name} (locks were all named manifest.lock.json before); build from ${out} and delete the old one`)
    return {path: out, name: lock.name, version: lock.version, artifacts: lock.artifacts.length, bytes, ...(stale ? {staleLock: stale} : {})}
  }
}
