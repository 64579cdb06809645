import {Args} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {listMedia} from '../../media/media-check.js'
import {formatBytes} from '../../format.js'

export default class UsbList extends BaseCommand {
  static summary = 'List the bundles on a stick.'

  static description = `Shows each bundle written to the stick: name, version, size, number of parts, and whether it is complete (its parts.json and every part present with the right size). Interrupted writes show as incomplete. Nothing is hashed: "ferry usb verify" does that.`

  static examples = ['<%= config.bin %> usb list /media/usb']

  static args = {
    dir: Args.string({description: 'folder where the stick is mounted', required: true}),
  }

  async run() {
    const {args} = await this.parse(UsbList)
    const bundles = await listMedia(args.dir)
    if (!bundles.length) this.say(`${args.dir} holds no bundle`)
    for (const b of bundles) {
      const what = b.name ? `${b.name} ${b.version}, ${formatBytes(b.size ?? 0)}, ${b.parts} part(s)` : `${b.parts} part(s)`
      this.say(`${b.complete ? 'complete  ' : 'INCOMPLETE'} ${b.bundle}: ${what}${b.problem ? ` (${b.problem})` : ''}`)
    }
    return {dir: args.dir, bundles}
  }
}
