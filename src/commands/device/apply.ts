import {BaseCommand} from '../../cli/base-command.js'
import {containerdAddressFlag, namespaceFlag} from '../../cli/device-flags.js'
import {rootFlag} from '../../cli/flags.js'
import {applyStaged} from '../../device/apply.js'
import {devicePaths} from '../../device/paths.js'

export default class DeviceApply extends BaseCommand {
  static summary = 'Switch to the staged release, run its health checks, then commit it or roll back.'

  static description = `Takes the device lock (exit 8 while another apply, import or recover runs), journals each step before doing it, imports the release's images (containerd, or K3s's airgap folder), runs the pre-switch hook, switches "current" to the new slot, runs the activate and post-switch hooks, then tries the release: its health checks with their deadlines and retries.

All pass: the release is committed (anti-rollback floor raised, a key rotation it carries adopted, the old release kept as the previous slot). Any failure or timeout: the device goes back to the previous release by itself, the new one is marked bad, and the command exits 7 with the failing check's output. Nothing staged: exit 2, import first.`

  static examples = ['<%= config.bin %> device apply --root /', '<%= config.bin %> device apply --root /tmp/sandbox --containerd-address /run/containerd/containerd.sock --json']

  static interruptible = true

  static flags = {
    root: rootFlag,
    'containerd-address': containerdAddressFlag,
    namespace: namespaceFlag,
  }

  async run() {
    const {flags} = await this.parse(DeviceApply)
    const root = flags.root === '/' ? '' : ` --root ${flags.root}`
    this.onInterrupt(() => `the apply did not finish: run "ferry device recover${root}", which ends on the old release or the new one, then "ferry device status${root}"`)
    const result = await applyStaged(devicePaths(flags.root), {
      containerdAddress: flags['containerd-address'],
      namespace: flags.namespace,
      say: (line) => this.say(line),
      onCheck: (e) => {
        if (e.ok === undefined) return
        this.say(`  ${e.ok ? 'ok  ' : 'FAIL'} ${e.check}${e.of > 1 ? ` (attempt ${e.attempt}/${e.of})` : ''}${e.reason ? `: ${e.reason}` : ''}`)
      },
    })
    if (result.outcome === 'already-applied') this.say(`${result.release.name} ${result.release.version} is already applied (slot ${result.release.slot}); nothing changed`)
    return {
      outcome: result.outcome,
      state: result.state.state,
      current: result.release,
      ...(result.previous ? {previous: result.previous} : {}),
      checks: result.checks.map((c) => ({name: c.name, ok: c.ok, attempts: c.attempts})),
      ...(result.commit ? {floor: result.commit.floor, gc: result.commit.gc, ...(result.commit.rotated ? {rotated: result.commit.rotated} : {})} : {}),
    }
  }
}
