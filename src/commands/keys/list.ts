import {Args} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {listKeys, type ListedKey} from '../../trust/keys.js'

export default class KeysList extends BaseCommand {
  static summary = 'List the OpenPGP keys in a folder.'

  static description = `Reads every .asc, .gpg, .pgp and .key file in DIR and shows each key: file, fingerprint, user id and whether the file holds the public or the private key. Compare the fingerprint with the one the key's owner gave you before trusting a key. Armored files that are not keys (detached signatures) are skipped; a key file that cannot be read is an error naming it.`

  static examples = [
    {description: "The keys that ship with the project", command: '<%= config.bin %> <%= command.id %> keys'},
    {description: 'The same as JSON, for scripts', command: '<%= config.bin %> <%= command.id %> keys --json'},
  ]

  static args = {
    dir: Args.string({description: 'Folder holding key files.', required: true}),
  }

  async run(): Promise<ListedKey[]> {
    const {args} = await this.parse(KeysList)
    const keys = await listKeys(args.dir)
    if (keys.length === 0) {
      this.say(`No keys in ${args.dir}.`)
      return keys
    }
    const rows = keys.map((k) => [
      k.file,
      k.fingerprint,
      k.userIds[0] ?? '',
      k.private ? 'private' : 'public',
      [k.revoked ? 'revoked' : '', k.expires ? `expires ${k.expires.slice(0, 10)}` : ''].filter(Boolean).join(', '),
    ])
    const header = ['FILE', 'FINGERPRINT', 'USER ID', 'KIND', 'NOTE']
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
    for (const row of [header, ...rows]) this.say(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd())
    return keys
  }
}
