import {Args, Command, loadHelpClass} from '@oclif/core'

export default class HelpCommand extends Command {
  static summary = 'Explain a command or a topic: ferry help bundle build (the same as ferry bundle build --help).'

  static strict = false

  static args = {
    command: Args.string({description: 'the command or topic, as words (bundle build)', required: false}),
  }

  static examples = ['<%= config.bin %> help', '<%= config.bin %> help bundle build', '<%= config.bin %> device trust --help']

  async run(): Promise<void> {
    const Help = await loadHelpClass(this.config)
    const help = new Help(this.config, this.config.pjson.oclif.helpOptions)
    await help.showHelp(this.argv.length ? [this.argv.join(':')] : [])
  }
}
