import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {proxyFlag, registryFlags, registryOptions, storeFlag} from '../../cli/flags.js'
import {signerFlags, signersFrom} from '../../cli/signer-flags.js'
import {runRelease} from '../../release/run.js'
import {BlobStore} from '../../store/blob-store.js'
import {formatBytes} from '../../format.js'

export default class ReleaseRun extends BaseCommand {
  static summary = 'Make this month\'s release in a release folder, only when something changed upstream.'

  static description = `The whole monthly job in one command, safe to run unattended. It takes the folder's lock (another live run: exit 8; a lock left by a killed run, or before a reboot, is broken), resolves the manifest afresh (k3s channels, image tags, "version: auto"), and when every artifact equals the last release's it reports "changed: false", exits 0 and writes nothing.

Otherwise it saves the resolved lock in the folder (pending.lock.json), builds the full bundle, a delta from each of the last --deltas releases (those --keep leaves), and a changelog (<name>-<version>.changes.md for people, .changes.json for scripts: each artifact added, removed or changed with old and new version, ref, digest and size, and each delta's size), records the release in releases.json (written last, atomically), then keeps the newest --keep full releases and drops every delta whose base or target went.

"version: auto" is always above every release in the folder, even for two runs in one minute. A run after a crash or kill -9 finishes the saved release; no half-made file ever has a final name. An unreachable upstream is exit 5 and a full disk exit 6; neither touches the releases already there. Off a terminal it prints one plain line per step (journald keeps them).`

  static examples = [
    {description: 'The monthly job', command: '<%= config.bin %> release run manifests/site.yaml --key /etc/ferry/release.key.asc --out /srv/ferry/releases'},
    {description: 'Sign through gpg-agent, keep a year of releases, print one JSON object', command: '<%= config.bin %> release run site.yaml --gpg-key 0123456789ABCDEF0123456789ABCDEF01234567 --out /srv/ferry/releases --keep 12 --json'},
  ]

  static interruptible = true

  static args = {
    manifest: Args.string({description: 'manifest (.yaml); resolved afresh on every run', required: true}),
  }

  static flags = {
    ...signerFlags,
    out: Flags.string({char: 'o', description: 'The release folder: full bundles, deltas, changelogs and releases.json.', required: true}),
    keep: Flags.integer({description: 'Full releases to keep; older ones and every delta whose base or target goes are removed. The newest is never removed.', default: 6, min: 1}),
    deltas: Flags.integer({description: 'Build a delta from each of this many latest releases.', default: 3, min: 0}),
    store: storeFlag,
    jobs: Flags.integer({char: 'j', description: 'Parallel downloads: this many files, and as many image blobs, at once.', default: 4, min: 1, max: 32}),
    ...registryFlags,
    proxy: proxyFlag,
  }

  async run() {
    const {args, flags} = await this.parse(ReleaseRun)
    const signers = await signersFrom(flags, 'a release')
    const store = new BlobStore(BlobStore.defaultRoot(flags.store))
    this.onInterrupt(() => `no release was recorded and the releases in ${flags.out} are untouched; the resolved lock (pending.lock.json, once saved) and the downloads in the store ${store.root} are kept: run the same command again to finish this release`)
    const result = await runRelease({
      manifest: args.manifest,
      dir: flags.out,
      signers,
      store,
      keep: flags.keep,
      deltas: flags.deltas,
      registry: registryOptions(flags),
      concurrency: flags.jobs,
      onStep: (line) => this.say(line),
      onProgress: this.progress(),
    })
    if (result.changed) {
      this.say(`released ${result.version}: ${result.bundle.path} (${formatBytes(result.bundle.size)}), ${result.deltas.length} delta(s), changelog ${result.changelog.md}`)
    } else {
      this.say(`unchanged: the last release ${result.version} is current`)
    }
    return result
  }
}
