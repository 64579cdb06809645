import {Flags} from '@oclif/core'
import {BaseCommand} from '../cli/base-command.js'
import {runDemo} from '../demo/run.js'

export default class Demo extends BaseCommand {
  static summary = 'Run both halves end to end on generated data, offline, with nothing but Node.'

  static description = `Starts a loopback HTTP upstream laid out like the k3s releases, dl.k8s.io and Azure Linux (with a signed checksum file) and generates two container images in an OCI layout; locks manifests/demo.yaml against them, builds a signed bundle into bundles/, verifies it, writes it in parts to a folder standing in for a USB stick and verifies it there. Then it plays the site: a sandbox device imports the bundle from the stick and applies it (health check passes, committed), and a second release whose health check fails is rolled back automatically, as device status shows. Last, the monthly job over two months (manifests/demo-release.yaml, k3s from a channel, version auto): release run makes a first release into demo/releases, a run right after writes nothing, then the upstream moves (a new k3s on the stable channel, a rebuilt image) and the next run makes the full bundle, the delta and the changelog. Everything it makes goes under demo/ (fixtures, keys, store, lock, stick, device, releases) and bundles/.`

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
