import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../../cli/base-command.js'
import {rootFlag} from '../../../cli/flags.js'
import {devicePaths} from '../../../device/paths.js'
import {removeTrustedKey} from '../../../device/trust-store.js'

export default class DeviceTrustRemove extends BaseCommand {
  static summary = 'Stop trusting a key; --revoke also refuses it for good.'

  static description = `Without --revoke the key is dropped and may be added again later. With --revoke it is also recorded as revoked: "trust add" refuses it and so does a bundle's key rotation, and a bundle it signs is refused naming it. A fingerprint not trusted here can be revoked ahead of time.

Removing the last key (or leaving fewer keys than the threshold) would make every bundle fail, so it needs --force.`

  static examples = [
    '<%= config.bin %> device trust remove 0123456789ABCDEF0123456789ABCDEF01234567',
    {description: 'A key was compromised', command: '<%= config.bin %> device trust remove 0123456789ABCDEF0123456789ABCDEF01234567 --revoke'},
  ]

  static args = {
    fingerprint: Args.string({description: 'fingerprint of the key (or its last 16 hex digits)', required: true}),
  }

  static flags = {
    root: rootFlag,
    revoke: Flags.boolean({description: 'Also record the key as revoked, so it can never be trusted again on this device.'}),
    force: Flags.boolean({description: 'Remove even the last key (no bundle can be imported until a key is added).'}),
  }

  async run() {
    const {args, flags} = await this.parse(DeviceTrustRemove)
    const r = await removeTrustedKey(devicePaths(flags.root), args.fingerprint, {revoke: flags.revoke, force: flags.force})
    if (r.removed) this.say(`removed ${r.removed}`)
    if (r.revoked) this.say(`revoked ${r.revoked}`)
    this.say(`${r.remaining} trusted key(s) left, threshold ${r.threshold}`)
    return r
  }
}
