import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {devicePaths} from '../../device/paths.js'
import type {SlotRelease} from '../../device/state-format.js'
import {deviceStatus} from '../../device/status.js'

const release = (r: SlotRelease | null) => (r ? `${r.name} ${r.version} (slot ${r.slot})` : 'none')

export default class DeviceStatus extends BaseCommand {
  static summary = 'Show what the device runs, what is staged, and what it trusts.'

  static description = `Reads the device's journal and trust store; changes nothing and takes no lock, so it answers even while an import or apply runs.

state is one of idle, verifying, staged, switching, trial, committed, rolling-back, rolled-back. "current" is the release the device runs, "previous" the one it can roll back to, "staged" the one "ferry device apply" would switch to. The floor is the lowest version the device accepts (raised at each commit). With --json: result.state, result.current.version, result.previous.version, result.floor.`

  static examples = [
    '<%= config.bin %> device status',
    {description: 'For a script', command: '<%= config.bin %> device status --json --root /mnt/device'},
  ]

  static flags = {
    root: rootFlag,
  }

  async run() {
    const {flags} = await this.parse(DeviceStatus)
    const s = await deviceStatus(devicePaths(flags.root))
    this.say(`state:    ${s.state}${s.step ? ` (step ${s.step})` : ''}`)
    this.say(`current:  ${release(s.current)}`)
    this.say(`previous: ${release(s.previous)}`)
    this.say(`staged:   ${release(s.staged)}`)
    const floors = Object.entries(s.floors).map(([name, version]) => `${name === '*' ? 'any name' : name} ${version}`)
    this.say(`floor:    ${floors.length ? floors.join(', ') : 'none (nothing committed yet)'}`)
    this.say(`trusted:  ${s.trustedKeys.length ? s.trustedKeys.map((k) => k.fingerprint).join(', ') : 'no key: run "ferry device trust add KEY.pub.asc"'} (threshold ${s.threshold})`)
    if (s.lastError) this.say(`last error: ${s.lastError}`)
    return s
  }
}
