import {Args} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {FerryError, integrityError} from '../../errors.js'
import {listMedia, type MediaBundle} from '../../media/media-check.js'
import {formatBytes} from '../../format.js'

export default class UsbList extends BaseCommand {
  static summary = 'List the bundles on a stick.'

  static description = `Shows each bundle written to the stick: name, version, size, number of parts, and whether it is complete (its parts.json and every part present with the right size). Interrupted writes show as incomplete, and then the command exits 3 (INCOMPLETE_BUNDLE; with --json the envelope carries the listing as result too), so a script can tell a stick that is ready from one that is not. Nothing is hashed: "ferry usb verify" does that.`

  static examples = ['<%= config.bin %> usb list /media/usb', '<%= config.bin %> usb list /media/usb --json   # exit 3 when a bundle is incomplete']

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
    const result = {dir: args.dir, bundles}
    const incomplete = bundles.filter((b) => !b.complete)
    if (incomplete.length) {
      const n = incomplete.length
      throw integrityError('INCOMPLETE_BUNDLE', `${n} of ${bundles.length} bundle(s) on ${args.dir} ${n === 1 ? 'is' : 'are'} incomplete: ${incomplete.map((b) => b.bundle).join(', ')}; run "ferry usb write" again (or "ferry usb verify" to name the bad parts)`, {listing: result})
    }
    return result
  }

  /** The listing stays in the envelope beside the error: a script sees which bundles are fine. */
  protected toErrorJson(err: unknown): {status: number; error: {code: string; message: string}; result?: {dir: string; bundles: MediaBundle[]}} {
    const base = super.toErrorJson(err)
    const listing = err instanceof FerryError && err.code === 'INCOMPLETE_BUNDLE' ? (err.data?.listing as {dir: string; bundles: MediaBundle[]}) : undefined
    return listing ? {...base, result: listing} : base
  }
}
