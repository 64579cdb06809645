import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../../cli/base-command.js'
import {rootFlag} from '../../../cli/flags.js'
import {devicePaths} from '../../../device/paths.js'
import {removeTrustedKey} from '../../../device/trust-store.js'

export default class DeviceTrustRevoke extends BaseCommand {
  static summary = 'Refuse a key for good: drop it from the trust store and record it as revoked.'

  static description = `The same as "device trust remove --revoke": "trust add" refuses the key from now on, and so does a bundle's key rotation; a bundle it signs is refused naming it. A fingerprint not trusted here can be revoked ahead of time.

Revoking the last key (or leaving fewer keys than the threshold) would make every bundle fail, so it needs --force.`

  static examples = [
    {description: 'A key was compromised', command: '<%= config.bin %> device trust revoke 0123456789ABCDEF0123456789ABCDEF01234567'},
  ]

  static args = {
    fingerprint: Args.string({description: 'fingerprint of the key (or its last 16 hex digits)', required: true}),
  }

  static flags = {
    root: rootFlag,
    force: Flags.boolean({description: 'Revoke even the last trusted key (no bundle can be imported until a key is added).'}),
  }

  async run() {
    const {args, flags} = await this.parse(DeviceTrustRevoke)
    const r = await removeTrustedKey(devicePaths(flags.root), args.fingerprint, {revoke: true, force: flags.force})
    if (r.removed) this.say(`removed ${r.removed}`)
    if (r.revoked) this.say(`revoked ${r.revoked}`)
    this.say(`${r.remaining} trusted key(s) left, threshold ${r.threshold}`)
    return r
  }
}
