import {Flags} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {devicePaths} from '../../device/paths.js'
import {recoverDevice} from '../../device/recover.js'

export default class DeviceRecover extends BaseCommand {
  static summary = 'Finish or undo whatever an interrupted import, apply or rollback left in flight.'

  static description = `Run at boot (packaging/ferry-recover.service) and by hand after a crash. Reads the journal: an interrupted switch or rollback ends on the previous release; an interrupted trial re-runs its health checks and commits, unless it was interrupted more than trial.maxAttempts times (device.yaml, default 3): then it rolls back; an interrupted import is abandoned. Nothing in flight: exit 0, says so.

A state.json that cannot be read (exit 3 from every device command) is rebuilt with --rebuild-state: the release "current" points at is the current one (committed if its name's floor reaches it, else back in trial, whose health checks then run again), the other slot's release the previous one.

Exit 7 when the device ended on the previous release (the update did not take), with the reason.`

  static examples = ['<%= config.bin %> device recover --root /', {description: 'state.json was damaged', command: '<%= config.bin %> device recover --rebuild-state'}]

  static flags = {
    root: rootFlag,
    'rebuild-state': Flags.boolean({description: 'state.json cannot be read: rebuild it from the slots and the "current" link (the unreadable file is kept beside it), then recover as usual.'}),
  }

  async run() {
    const {flags} = await this.parse(DeviceRecover)
    const result = await recoverDevice(devicePaths(flags.root), {say: (line) => this.say(line), rebuildState: flags['rebuild-state']})
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
