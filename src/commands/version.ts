import {BaseCommand} from '../cli/base-command.js'

export default class Version extends BaseCommand {
  static summary = 'Print the version of Ferry (the same as ferry --version).'

  static examples = ['<%= config.bin %> version', '<%= config.bin %> version --json']

  async run() {
    await this.parse(Version)
    const {version, platform, arch} = this.config
    this.say(this.config.userAgent)
    return {version, node: process.versions.node, platform, arch}
  }
}
