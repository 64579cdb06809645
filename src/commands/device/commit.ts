import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {commitByHand} from '../../device/manual.js'
import {devicePaths} from '../../device/paths.js'

export default class DeviceCommit extends BaseCommand {
  static summary = 'Commit the release in trial by hand, without waiting for its health checks.'

  static description = 'Raises the anti-rollback floor, adopts a key rotation the release carries, keeps the old release as the previous slot. Only a release in trial can be committed (exit 2 otherwise).'

  static examples = ['<%= config.bin %> device commit --root /']

  static flags = {
    root: rootFlag,
  }

  async run() {
    const {flags} = await this.parse(DeviceCommit)
    const result = await commitByHand(devicePaths(flags.root))
    const current = result.state.current
    this.say(`committed ${current?.name} ${current?.version} (slot ${current?.slot}); the anti-rollback floor is ${result.floor}`)
    return {state: result.state.state, current, ...(result.state.previous ? {previous: result.state.previous} : {}), floor: result.floor, gc: result.gc}
  }
}
