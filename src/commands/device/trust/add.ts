import {Args} from '@oclif/core'
import {BaseCommand} from '../../../cli/base-command.js'
import {rootFlag} from '../../../cli/flags.js'
import {devicePaths} from '../../../device/paths.js'
import {addTrustedKey} from '../../../device/trust-store.js'

export default class DeviceTrustAdd extends BaseCommand {
  static summary = 'Trust a release signing key on this device.'

  static description = `Done once, when the device is provisioned: copy the release public key (never the private one) and add it. Bundles must then carry signatures from enough trusted keys (the threshold, 1 unless a key rotation raised it). Later key changes arrive inside bundles, signed by the keys trusted now.

Refused: private keys, keys revoked on this device ("trust remove --revoke"), and keys that are themselves revoked or expired.`

  static examples = [
    '<%= config.bin %> device trust add /media/usb/release.pub.asc',
    '<%= config.bin %> device trust add release.pub.asc backup.pub.asc --root /tmp/device',
  ]

  static strict = false

  static args = {
    file: Args.string({description: 'public key file(s) (armored .asc or binary); give several to trust several', required: true}),
  }

  static flags = {
    root: rootFlag,
  }

  async run() {
    const {argv, flags} = await this.parse(DeviceTrustAdd)
    const paths = devicePaths(flags.root)
    const added = []
    for (const file of argv as string[]) added.push(...(await addTrustedKey(paths, file)))
    for (const k of added) this.say(`trusted ${k.fingerprint} ${k.userIds.join(', ')}`)
    return {added}
  }
}
