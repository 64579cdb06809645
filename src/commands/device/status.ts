import {BaseCommand} from '../../cli/base-command.js'
import {rootFlag} from '../../cli/flags.js'
import {devicePaths} from '../../device/paths.js'
import {type DeviceStatus as Status, deviceStatus, type ReleaseStatus} from '../../device/status.js'

const release = (r: ReleaseStatus | null) => {
  if (!r) return 'none'
  const parts = [`${r.name} ${r.version} (slot ${r.slot})`]
  if (r.k3s) parts.push(`k3s ${r.k3s}`)
  if (r.kubernetes) parts.push(`kubernetes ${r.kubernetes}`)
  if (r.importedAt) parts.push(`imported ${r.importedAt}`)
  return parts.join(', ')
}

const INTERRUPTED = {
  import: 'an import stopped half-way (killed or power cut); nothing it was importing is staged',
  apply: 'an apply stopped half-way (killed or power cut); recover finishes the trial or goes back to the previous release',
  rollback: 'a rollback stopped half-way (killed or power cut); recover finishes it',
}

function stateLine(s: Status): string {
  const step = s.step ? `, step ${s.step}` : ''
  if (s.interrupted) return `${s.state} (interrupted${step}; nothing is running) since ${s.updated}`
  if (s.running) return `${s.state} (in progress${step}, process ${s.running.pid}) since ${s.updated}`
  return `${s.state}${step ? ` (${step.slice(2)})` : ''} since ${s.updated}`
}

export default class DeviceStatus extends BaseCommand {
  static summary = 'Show what the device runs, what is staged, what stopped half-way, and what to run next.'

  static description = `Reads the device's journal and trust store; changes nothing and takes no lock, so it answers even while an import or apply runs. A --root that holds no Ferry state (no <root>/var/lib/ferry) is exit 2.

state is one of idle, verifying, staged, switching, trial, committed, rolling-back, rolled-back. When an import, apply or rollback was interrupted (the journal shows it in flight and no process holds the device lock), status says so and names "ferry device recover" as the next command. "current" is the release the device runs, "previous" the one it can roll back to, "staged" the one "ferry device apply" would switch to, each with the K3s and Kubernetes versions it installs and when it was imported. "bad" lists releases a rollback marked bad (import refuses them without --force). The floor is the lowest version of each bundle name the device accepts (raised at each commit). "next" is the command to run next.

A state.json that cannot be read is exit 3 naming the file: "ferry device recover --rebuild-state" rebuilds it from the slots and the "current" link, keeping the unreadable file beside it.

With --json: result.state, result.current.version, result.previous.version, result.floor, result.floors, result.interrupted, result.badReleases, result.next.`

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
    this.say(`state:    ${stateLine(s)}`)
    if (s.interrupted) this.say(`          ${INTERRUPTED[s.interrupted.operation]}`)
    this.say(`current:  ${release(s.current)}`)
    this.say(`previous: ${release(s.previous)}`)
    this.say(`staged:   ${release(s.staged)}`)
    for (const b of s.badReleases) {
      this.say(`bad:      ${b.name ?? '?'} ${b.version ?? '?'} (bundle.json ${b.digest}), rolled back ${b.at}${b.reason ? `: ${b.reason}` : ''}`)
    }
    const floors = Object.entries(s.floors).map(([name, version]) => `${name === '*' ? 'any name' : name} ${version}`)
    this.say(`floor:    ${floors.length ? floors.join(', ') : 'none (nothing committed yet)'}`)
    if (s.trustedKeys.length === 0) this.say('trusted:  no key')
    for (const [i, k] of s.trustedKeys.entries()) {
      this.say(`${i === 0 ? 'trusted:  ' : '          '}${k.fingerprint}${k.userIds.length ? ` ${k.userIds.join(', ')}` : ''}`)
    }
    this.say(`          ${s.threshold} signature(s) required${s.revokedKeys.length ? `; revoked: ${s.revokedKeys.join(', ')}` : ''}`)
    if (s.lastError) this.say(`last error: ${s.lastError}`)
    this.say(`next:     ${s.next}`)
    return s
  }
}
