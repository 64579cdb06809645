// `ferry device apply --root ROOT` without the CLI's start-up cost, for the random-kill loop: the same
// built core the command calls (dist/), in a process of its own that the test kills.
import {applyStaged} from '../../dist/device/apply.js'
import {devicePaths} from '../../dist/device/paths.js'

try {
  await applyStaged(devicePaths(process.argv[2]))
} catch (err) {
  process.stderr.write(`${err.message}\n`)
  process.exitCode = err.exit ?? 1
}
