import {Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {runDemo} from '../demo/run.js'

export default class Demo extends BaseCommand {
  static summary = 'Run the whole build side on generated data, offline, with nothing but Node.'

  static description = `Starts a loopback HTTP upstream laid out like the k3s releases, dl.k8s.io and Azure Linux (with a signed checksum file), locks manifests/demo.yaml against it, builds a signed bundle into bundles/ and verifies it. Everything it makes goes under demo/ (fixtures, keys, store, lock) and bundles/.`

  static examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --json']

  static flags = {
    work: Flags.string({description: 'Work folder for fixtures, keys, store and lock (default: demo/ in the package).'}),
    out: Flags.string({description: 'Output folder for the bundle (default: bundles/ in the package).'}),
  }

  async run() {
    const {flags} = await this.parse(Demo)
    return runDemo({workDir: flags.work, outDir: flags.out, say: (line) => this.say(line), onProgress: this.progress()})
  }
}
