import {Args, Flags} from '@oclif/core'
import {buildBundle} from '../../bundle/build.js'
import {BaseCommand} from '../../cli/base-command.js'
import {storeFlag} from '../../cli/flags.js'
import {loadBuildInput} from '../../manifest/lock.js'
import {BlobStore} from '../../store/blob-store.js'
import {fileSigner, gpgSigner, type Signer} from '../../trust/sign.js'
import {formatBytes} from '../../ui/format.js'

export default class BundleBuild extends BaseCommand {
  static summary = 'Build a signed bundle from a manifest or a lock.'

  static description = `Fetches every artifact the manifest names (VM images, K3s and Kubernetes binaries, files), checks each against its upstream checksum and signature, stores it in the blob store, and writes <name>-<version>.ferry.tar: a signed bundle.json followed by an OCI image layout.

Given a manifest, it is locked first (as "ferry manifest lock" does). Given a lock, the bundle is reproducible: two builds of one lock are byte-identical, because created/expires and the signature time come from the lock. The file appears only when complete (written to a temp name, then renamed).`

  static examples = [
    {description: 'Build from a lock with a key file', command: '<%= config.bin %> bundle build manifests/manifest.lock.json --key keys/release.key.asc'},
    {description: 'Sign through gpg-agent or a smartcard', command: '<%= config.bin %> bundle build site.yaml --gpg-key 0123456789ABCDEF0123456789ABCDEF01234567 --out /srv/bundles'},
    {description: 'In a scheduled job', command: '<%= config.bin %> bundle build site.lock.json --key /run/secrets/release.key.asc --json'},
  ]

  static args = {
    input: Args.string({description: 'manifest (.yaml) or lock (.lock.json)', required: true}),
  }

  static flags = {
    key: Flags.string({char: 'k', description: 'Private key file (armored OpenPGP) to sign with; repeat for several signers.', multiple: true}),
    'gpg-key': Flags.string({description: 'Fingerprint of a key held by gpg (gpg-agent, smartcard) to sign with; repeat for several.', multiple: true}),
    'passphrase-env': Flags.string({description: 'Name of the environment variable holding the private key passphrase.'}),
    out: Flags.string({char: 'o', description: 'Output folder.', default: 'bundles'}),
    store: storeFlag,
    jobs: Flags.integer({char: 'j', description: 'Parallel downloads.', default: 4, min: 1, max: 32}),
  }

  async run() {
    const {args, flags} = await this.parse(BundleBuild)
    const passphrase = flags['passphrase-env'] ? process.env[flags['passphrase-env']] : undefined
    const signers: Signer[] = []
    for (const file of flags.key ?? []) signers.push(await fileSigner(file, passphrase))
    for (const fpr of flags['gpg-key'] ?? []) signers.push(await gpgSigner(fpr))
    const store = new BlobStore(BlobStore.defaultRoot(flags.store))
    const lock = await loadBuildInput(args.input, {store, onProgress: this.progress()})
    const built = await buildBundle(lock, {store, signers, outDir: flags.out, concurrency: flags.jobs, onProgress: this.progress()})
    this.say(`built ${built.path}`)
    this.say(`  ${built.manifest.artifacts.length} artifacts, ${formatBytes(built.size)}, sha256 ${built.sha256}`)
    this.say(`  signed by ${signers.map((s) => s.fingerprint).join(', ')}; expires ${built.manifest.expires}`)
    return {
      path: built.path,
      sha256: built.sha256,
      size: built.size,
      name: built.manifest.name,
      version: built.manifest.version,
      artifacts: built.manifest.artifacts.length,
      fetched: built.fetched,
      signers: signers.map((s) => s.fingerprint),
    }
  }
}
