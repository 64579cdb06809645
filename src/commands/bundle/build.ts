import {Args, Flags} from '@oclif/core'
import {buildBundle} from '../../bundle/build.js'
import {loadBase} from '../../bundle/delta.js'
import {isBundleDocument, SBOM_NAME} from '../../bundle/documents.js'
import {rotationFromFiles} from '../../bundle/rotation.js'
import {BaseCommand} from '../../cli/base-command.js'
import {proxyFlag, registryFlags, registryOptions, storeFlag} from '../../cli/flags.js'
import {signerFlags, signersFrom} from '../../cli/signer-flags.js'
import {loadBuildInput} from '../../manifest/build-input.js'
import {BlobStore} from '../../store/blob-store.js'
import {usageError} from '../../errors.js'
import {formatBytes} from '../../format.js'

export default class BundleBuild extends BaseCommand {
  static summary = 'Build a signed bundle from a manifest or a lock.'

  static description = `Fetches every artifact the manifest names (VM images, K3s and Kubernetes binaries, files), checks each against its upstream checksum and signature, stores it in the blob store, and writes <name>-<version>.ferry.tar: a signed bundle.json followed by an OCI image layout.

Given a manifest, it is locked first (as "ferry manifest lock" does). Given a lock, the bundle is reproducible: two builds of one lock are byte-identical, because created/expires and the signature time come from the lock. The file appears only when complete (written to a temp name, then renamed). One version is one content: a file of the same name and version in the output folder that holds other content (artifacts, health checks, platforms; not just a later created/expires) is never replaced (exit 2, naming both bundle.json digests): give the change a new version.

Downloads and writing overlap: the bundle is written in order while later blobs still arrive. When the output folder shares a file system with the store (one with hard links), image layers and files (below 1 GiB; larger ones go through the store, where a download cut short is kept for the next run) go straight into the bundle, and the bundle is then kept in the store as a pack (a hard link); rebuilding an unchanged lock with the same signer links that pack instead of writing the bytes again.

VM images (and files with "delta: chunks") are cut into content-defined chunks; the bundle carries each one's chunk index. A delta (--since) carries a changed one as a pack of only the chunks its base lacks (the device rebuilds the file and checks it against the upstream sha256), unless that saves under 10%.`

  static examples = [
    {description: 'Build from a lock with a key file', command: '<%= config.bin %> bundle build manifests/site.lock.json --key keys/release.key.asc'},
    {description: 'Sign through gpg-agent or a smartcard', command: '<%= config.bin %> bundle build site.yaml --gpg-key 0123456789ABCDEF0123456789ABCDEF01234567 --out /srv/bundles'},
    {description: 'A delta from last month\'s bundle: changed VM images travel as their new chunks only', command: '<%= config.bin %> bundle build site.lock.json --key keys/release.key.asc --since bundles/edge-site-2026.10.0.ferry.tar'},
    {description: 'In a scheduled job', command: '<%= config.bin %> bundle build site.lock.json --key /run/secrets/release.key.asc --json'},
    {description: 'Move devices to a new signing key (adopted when they commit this release)', command: '<%= config.bin %> bundle build site.lock.json --key keys/old.key.asc --rotate-to keys/new.pub.asc'},
  ]

  static interruptible = true

  static args = {
    input: Args.string({description: 'manifest (.yaml) or lock (.lock.json)', required: true}),
  }

  static flags = {
    ...signerFlags,
    out: Flags.string({char: 'o', description: 'Output folder.', default: 'bundles'}),
    store: storeFlag,
    since: Flags.string({description: 'Build a delta against this older bundle (.ferry.tar, stick folder, parts.json) or its lock: blobs it already has are left out and named in bundle.json.'}),
    jobs: Flags.integer({char: 'j', description: 'Parallel downloads: this many files, and as many image blobs, at once.', default: 4, min: 1, max: 32}),
    ...registryFlags,
    proxy: proxyFlag,
    'rotate-to': Flags.string({description: 'Rotate devices to this public key set: each device adopts it when it commits this bundle (signed by the keys it trusts now). Repeat for several keys.', multiple: true, multipleNonGreedy: true}),
    'rotate-threshold': Flags.integer({description: 'With --rotate-to: how many of the new keys must sign later bundles.', default: 1, min: 1}),
    'rotate-revoke': Flags.string({description: 'With --rotate-to: fingerprint devices must refuse from now on (a compromised key). Repeat for several.', multiple: true, multipleNonGreedy: true}),
  }

  async run() {
    const {args, flags} = await this.parse(BundleBuild)
    const signers = await signersFrom(flags)
    const store = new BlobStore(BlobStore.defaultRoot(flags.store))
    this.onInterrupt(() => `no bundle was written; what was downloaded is kept in the store ${store.root} (unfinished downloads in ${store.root}/partial): run the same command again to resume`)
    const registry = registryOptions(flags)
    const lock = await loadBuildInput(args.input, {store, registry, onProgress: this.progress()})
    const since = flags.since ? await loadBase(flags.since, {onProgress: this.progress(), store}) : undefined
    if (!flags['rotate-to'] && flags['rotate-revoke']) throw usageError('ROTATION_EMPTY', '--rotate-revoke needs --rotate-to: the new key set devices move to')
    const rotation = flags['rotate-to'] ? await rotationFromFiles(flags['rotate-to'], flags['rotate-threshold'], flags['rotate-revoke']) : undefined
    const built = await buildBundle(lock, {store, signers, outDir: flags.out, concurrency: flags.jobs, registry, imageJobs: flags.jobs, onProgress: this.progress(), ...(since ? {since} : {}), ...(rotation ? {rotation} : {})})
    const shipped = built.manifest.artifacts.filter((a) => !isBundleDocument(a))
    const documents = built.manifest.artifacts.filter(isBundleDocument)
    this.say(`built ${built.path}`)
    this.say(`  ${shipped.length} artifacts, ${formatBytes(built.size)}; sha256 of the file ${built.sha256} (as sha256sum prints it); SBOM and provenance inside (ferry bundle sbom / provenance)`)
    if (built.reused) this.say('  unchanged since an earlier build of this lock: linked from the store, not written again')
    if (since) this.say(`  delta from ${since.name} ${since.version}: ${built.manifest.omitted?.length ?? 0} blob(s) left out (the base has them)`)
    for (const c of built.chunked.filter((x) => x.carried !== 'omitted')) {
      this.say(`  ${c.name}: ${c.chunks} chunks${c.carried === 'chunks' ? `, ${c.reused} from the base, ${formatBytes(c.newBytes)} new (a pack)` : ', carried whole'}`)
    }
    this.say(`  signed by ${signers.map((s) => s.fingerprint).join(', ')}; expires ${built.manifest.expires}`)
    if (rotation) this.say(`  rotates devices to ${rotation.keys.length} key(s), threshold ${rotation.threshold}, at commit`)
    return {
      path: built.path,
      sha256: built.sha256,
      size: built.size,
      name: built.manifest.name,
      version: built.manifest.version,
      // what it ships; the SBOM and provenance that describe them are `documents`
      artifacts: shipped.length,
      documents: Object.fromEntries(documents.map((d) => [d.name === SBOM_NAME ? 'sbom' : 'provenance', {digest: d.digest, size: d.size}])),
      fetched: built.fetched,
      reused: built.reused ?? false,
      signers: signers.map((s) => s.fingerprint),
      chunked: built.chunked,
      ...(built.manifest.base ? {base: built.manifest.base, omitted: built.manifest.omitted ?? []} : {}),
    }
  }
}
