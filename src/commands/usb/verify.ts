import {Args} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {verifyMedia} from '../../media/media-check.js'
import {formatBytes} from '../../format.js'

export default class UsbVerify extends BaseCommand {
  static summary = 'Re-read a stick and check every part of its bundles.'

  static description = `Reads every part of each bundle on the stick (or of the one named) and checks its size and sha256 against <bundle>.parts.json. Names every bad or missing part (exit 3). It checks the copy, not the signature: "ferry bundle verify DIR --key …" does that.`

  static examples = ['<%= config.bin %> usb verify /media/usb', '<%= config.bin %> usb verify /media/usb edge-site-2026.11.0.ferry.tar --json']

  static args = {
    dir: Args.string({description: 'folder where the stick is mounted', required: true}),
    bundle: Args.string({description: 'the bundle to check (file name, with or without .ferry.tar); default: all', required: false}),
  }

  async run() {
    const {args} = await this.parse(UsbVerify)
    const results = await verifyMedia(args.dir, args.bundle, this.progress())
    for (const r of results) this.say(`OK ${r.bundle}: ${r.name} ${r.version}, ${r.parts.length} part(s), ${formatBytes(r.size)}${r.sha256 ? `; sha256 of the bundle file ${r.sha256.replace(/^sha256:/, '')}` : ''}`)
    return {dir: args.dir, bundles: results}
  }
}
