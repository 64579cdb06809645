import {BaseCommand} from '../../../cli/base-command.js'
import {rootFlag} from '../../../cli/flags.js'
import {devicePaths} from '../../../device/paths.js'
import {listTrustedKeys} from '../../../device/trust-store.js'

export default class DeviceTrustList extends BaseCommand {
  static summary = 'List the keys this device accepts bundles from.'

  static description = 'Shows each trusted key (fingerprint, user ids, algorithm), how many of them must sign a bundle, and the keys revoked on this device.'

  static examples = ['<%= config.bin %> device trust list', '<%= config.bin %> device trust list --json --root /tmp/device']

  static flags = {
    root: rootFlag,
  }

  async run() {
    const {flags} = await this.parse(DeviceTrustList)
    const listing = await listTrustedKeys(devicePaths(flags.root))
    if (listing.keys.length === 0) this.say('no trusted key: add the release key with "ferry device trust add release.pub.asc"')
    for (const k of listing.keys) this.say(`${k.fingerprint}  ${k.algorithm}  ${k.userIds.join(', ')}`)
    this.say(`threshold: ${listing.threshold} signature(s) required`)
    if (listing.revoked.length) this.say(`revoked: ${listing.revoked.join(', ')}`)
    return listing
  }
}
