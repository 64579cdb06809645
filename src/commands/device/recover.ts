import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {devicePaths} from '../../device/paths.js'
import {recoverDevice} from '../../device/recover.js'

export default class DeviceRecover extends BaseCommand {
  static summary = 'Finish or undo whatever an interrupted import, apply or rollback left in flight.'

  static description = `Run at boot (packaging/ferry-recover.service) and by hand after a crash. Reads the journal: an interrupted switch or rollback ends on the previous release; an interrupted trial re-runs its health checks and commits, unless it was interrupted more than trial.maxAttempts times (device.yaml, default 3): then it rolls back; an interrupted import is abandoned. Nothing in flight: exit 0, says so.

Exit 7 when the device ended on the previous release (the update did not take), with the reason.`

  static examples = ['<%= config.bin %> device recover --root /']

  static flags = {
    root: rootFlag,
  }

  async run() {
    const {flags} = await this.parse(DeviceRecover)
    const result = await recoverDevice(devicePaths(flags.root), {say: (line) => this.say(line)})
    this.say(result.message)
    return {
      action: result.action,
      state: result.state.state,
      ...(result.state.current ? {current: result.state.current} : {}),
      ...(result.state.previous ? {previous: result.state.previous} : {}),
      message: result.message,
    }
  }
}
