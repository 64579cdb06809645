import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {importBundle} from '../../device/import.js'
import {devicePaths} from '../../device/paths.js'
import {formatBytes} from '../../format.js'

export default class DeviceImport extends BaseCommand {
  static summary = 'Verify a bundle and stage it into the inactive slot.'

  static description = `Reads the bundle once, as a stream: bundle.json must be signed by enough keys of the device's trust store ("ferry device trust list"), not expired (judged against the later of the system clock and the highest time the device has seen), built for this device's platform, of the bundle name the device runs (metadata.name; another name needs --switch-name), and not older than that name's committed version floor. Every blob is hashed as it streams by and stored in the device's blob store; then the inactive slot receives the binaries, files, VM image and image list, and release.json last. Nothing changes on the running release: "ferry device apply" switches to it.

The bundle may be a .ferry.tar file, a USB stick folder, or a .parts.json of a split bundle.

Exit codes: 0 staged, or already applied (the device runs this very bundle; nothing changes). 3 corrupt, truncated or mismatched bundle. 4 untrusted or missing signature, expired, wrong platform, another bundle name (use --switch-name), older than the floor (downgrade), the version the device runs with different content, or a release that was rolled back here (use --force). 6 not enough free space. 8 another import or apply is running.`

  static examples = [
    {description: 'Import from a mounted USB stick', command: '<%= config.bin %> device import /media/usb'},
    {description: 'Import a bundle file into a test root', command: '<%= config.bin %> device import edge-site-2026.11.0.ferry.tar --root /tmp/device'},
    {description: 'Retry a release that was rolled back', command: '<%= config.bin %> device import /media/usb --force'},
    {description: 'Turn a lab-site device into other-site', command: '<%= config.bin %> device import other-site-2027.1.0.ferry.tar --switch-name'},
  ]

  static interruptible = true

  static args = {
    bundle: Args.string({description: 'bundle file (.ferry.tar), USB stick folder, or .parts.json', required: true}),
  }

  static flags = {
    root: rootFlag,
    platform: Flags.string({description: 'This device\'s platform, e.g. linux/arm64. Default: device.yaml\'s platform, else this machine\'s.'}),
    force: Flags.boolean({description: 'Import a release even though a rollback marked it bad on this device.'}),
    'switch-name': Flags.boolean({description: 'Accept a bundle of another name than the one the device runs: the device becomes that site. Its anti-rollback floor is the new name\'s; the old name\'s floor is kept.'}),
  }

  async run() {
    const {args, flags} = await this.parse(DeviceImport)
    const paths = devicePaths(flags.root)
    const again = `ferry device import ${args.bundle}${flags.root === '/' ? '' : ` --root ${flags.root}`}`
    this.onInterrupt(() => `nothing was staged and the running release is untouched; blobs already checked are kept on the device: run "${again}" again`)
    const r = await importBundle(paths, args.bundle, {platform: flags.platform, force: flags.force, switchName: flags['switch-name'], onProgress: this.progress()})
    if (r.status === 'already-applied') {
      this.say(`already applied: the device runs ${r.name} ${r.version} (slot ${r.slot}); nothing changed`)
    } else {
      this.say(`staged ${r.name} ${r.version} into slot ${r.slot} (${r.platform})`)
      this.say(`  signed by ${r.signers.join(', ')}; ${r.blobs} blobs, ${r.stored.blobs} new (${formatBytes(r.stored.bytes)})`)
      if (r.rotation) this.say(`  carries a key rotation to ${r.rotation.keys.join(', ')} (threshold ${r.rotation.threshold}), adopted at commit`)
      this.say(`next: ferry device apply${flags.root === '/' ? '' : ` --root ${flags.root}`}`)
    }
    return r
  }
}
