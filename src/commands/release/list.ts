import {Args} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {listReleases} from '../../release/list.js'
import {formatBytes} from '../../format.js'

export default class ReleaseList extends BaseCommand {
  static summary = 'List the releases in a release folder.'

  static description = `Shows each release "ferry release run" recorded in the folder's releases.json, oldest first: version, when it was resolved, the full bundle and its size, and each delta with the release it starts from. Only complete releases are recorded, so one still being made, or left by a killed run, never shows.`

  static examples = ['<%= config.bin %> release list /srv/ferry/releases', '<%= config.bin %> release list /srv/ferry/releases --json']

  static args = {
    dir: Args.string({description: 'the release folder (--out of release run)', required: true}),
  }

  async run() {
    const {args} = await this.parse(ReleaseList)
    const listed = await listReleases(args.dir)
    if (!listed.releases.length) this.say(`${args.dir} holds no release yet`)
    for (const r of listed.releases) {
      this.say(`${listed.name} ${r.version}  created ${r.created}  ${r.path} (${formatBytes(r.size)})`)
      for (const d of r.deltas) this.say(`  delta from ${d.from}: ${d.path} (${formatBytes(d.size)})`)
    }
    return listed
  }
}
