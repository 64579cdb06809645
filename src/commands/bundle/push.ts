import {Args, Flags} from '@oclif/core'
import {openBundleInput} from '../../bundle/input.js'
import {pushBundle} from '../../bundle/push.js'
import {BaseCommand} from '../../cli/base-command.js'
import {proxyFlag, registryFlags, registryOptions, trustedKeyFlag} from '../../cli/flags.js'
import {readPublicKeys} from '../../trust/keys.js'
import {usageError} from '../../errors.js'
import {formatBytes} from '../../format.js'

export default class BundlePush extends BaseCommand {
  static summary = "Verify a bundle and load its images into a site's registry."

  static description = `For a site with several nodes: the bundle is verified first (signature against --key, every digest), then its images are sent to REGISTRY (distribution, zot, Harbor), each under PREFIX/<its repository>:<its tag>, so docker.io/library/nginx:1.27 pushed to registry.site:5000/edge becomes registry.site:5000/edge/library/nginx:1.27 with the same digest. Blobs the registry already has are not sent (HEAD), and one already in another repository there is mounted instead. Manifests are written last, once every blob they name is in. Each blob is hashed again as it is sent and its upload completed only when it is the verified digest: a bundle altered during the push stops it with exit 3. Credentials come from the files docker, podman and skopeo log in to.

A delta bundle (built with --since) leaves out what its base carried; push it to a registry the base was pushed to, and only the changed blobs are sent. The blobs it leaves out must already be in the registry, or come from the base bundle given with --base. If neither holds them, the push is refused with exit 2 before any manifest is written, naming the base to push first.`

  static examples = [
    '<%= config.bin %> bundle push bundles/edge-site-2026.11.0.ferry.tar registry.site.local:5000/edge --key keys/release.pub.asc',
    '<%= config.bin %> bundle push /media/usb registry.site.local --key keys/release.pub.asc --ca-file site-ca.pem --json',
    {
      description: 'A delta into the registry its base (2026.11.0) was pushed to: only the changed blobs are sent.',
      command: '<%= config.bin %> bundle push edge-site-2026.12.0-from-2026.11.0.ferry.tar registry.site.local:5000/edge --key keys/release.pub.asc',
    },
    {
      description: 'A delta into a registry that lacks its base: the missing blobs are read from the base bundle.',
      command: '<%= config.bin %> bundle push edge-site-2026.12.0-from-2026.11.0.ferry.tar registry.site.local:5000/edge --key keys/release.pub.asc --base edge-site-2026.11.0.ferry.tar',
    },
  ]

  static args = {
    bundle: Args.string({description: 'bundle (.ferry.tar, stick folder, parts.json)', required: true}),
    registry: Args.string({description: 'REGISTRY[/PREFIX], e.g. registry.site.local:5000/edge', required: true}),
  }

  static flags = {
    key: trustedKeyFlag,
    base: Flags.string({
      description: 'For a delta bundle: the bundle it was built against (.ferry.tar, stick folder or parts.json). Blobs the delta leaves out and the registry lacks are sent from it. Not needed when that bundle was pushed to REGISTRY before.',
    }),
    ...registryFlags,
    proxy: proxyFlag,
  }

  async run() {
    const {args, flags} = await this.parse(BundlePush)
    if (!flags.key?.length) throw usageError('NO_KEY', 'give the public key(s) the bundle must be signed by: --key FILE')
    const input = await openBundleInput(args.bundle)
    const result = await pushBundle(input, args.registry, {
      keys: await readPublicKeys(flags.key),
      registry: registryOptions(flags),
      onProgress: this.progress(),
      ...(flags.base ? {base: flags.base} : {}),
    })
    for (const i of result.images) this.say(`  ${i.target}  ${i.digest.slice(0, 19)}`)
    const b = result.blobs
    this.say(`pushed ${result.images.length} image(s): ${b.uploaded} blob(s) sent (${formatBytes(result.bytes)}), ${b.mounted} mounted, ${b.present} already there`)
    return result
  }
}
