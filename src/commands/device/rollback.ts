import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {rollBackByHand} from '../../device/manual.js'
import {devicePaths} from '../../device/paths.js'

export default class DeviceRollback extends BaseCommand {
  static summary = 'Go back to the previous release by hand, and mark the one left bad.'

  static description = 'From a trial, or from a committed release to the previous slot while that slot still holds its release (a later import overwrites it). The previous release\'s binaries are in its slot and its images are still in containerd: nothing is fetched. Nothing to go back to: exit 2.'

  static examples = ['<%= config.bin %> device rollback --root /']

  static flags = {
    root: rootFlag,
  }

  async run() {
    const {flags} = await this.parse(DeviceRollback)
    const state = await rollBackByHand(devicePaths(flags.root))
    this.say(state.current ? `rolled back to ${state.current.name} ${state.current.version} (slot ${state.current.slot})` : 'rolled back: no release is active')
    return {state: state.state, ...(state.current ? {current: state.current} : {}), lastError: state.lastError}
  }
}
