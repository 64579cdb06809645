// Starts a real containerd (Debian's 1.6) as root with its own root, state, socket and config in
// `dir`, so tests never touch a system instance. Used by image tests and by the device side.
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

export interface Containerd {
  /** the socket, for --containerd-address / CONTAINERD_ADDRESS */
  address: string
  /** runs `ctr --address <socket> ...args`; rejects on a non-zero exit with its stderr */
  ctr(args: string[]): Promise<{stdout: string; stderr: string}>
  stop(): Promise<void>
}

export async function startContainerd(dir: string): Promise<Containerd> {
  await mkdir(dir, {recursive: true})
  const address = join(dir, 'containerd.sock')
  const config = join(dir, 'config.toml')
  // Only what image import needs: no CRI (it wants CNI and more), no snapshotters that need other filesystems.
  await writeFile(
    config,
    `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[debug]
  address = "${join(dir, 'debug.sock')}"
`,
  )
  const log: string[] = []
  const child: ChildProcess = spawn('containerd', ['--config', config, '--log-level', 'warn'], {stdio: ['ignore', 'pipe', 'pipe']})
  child.stdout?.on('data', (d) => log.push(String(d)))
  child.stderr?.on('data', (d) => log.push(String(d)))
  let exited = false
  child.on('exit', () => (exited = true))
  const ctr = (args: string[]) =>
    new Promise<{stdout: string; stderr: string}>((resolve, reject) => {
      execFile('ctr', ['--address', address, ...args], {maxBuffer: 16 << 20}, (err, stdout, stderr) => {
        if (err) reject(new Error(`ctr ${args.join(' ')}: ${stderr || err.message}`))
        else resolve({stdout, stderr})
      })
    })
  const stop = async () => {
    if (exited) return
    child.kill('SIGTERM')
    for (let i = 0; i < 50 && !exited; i++) await sleep(100)
    if (!exited) child.kill('SIGKILL')
  }
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`containerd exited at start: ${log.join('').slice(-2000)}`)
    if (existsSync(address)) {
      try {
        await ctr(['version'])
        return {address, ctr, stop}
      } catch {
        // not serving yet
      }
    }
    await sleep(100)
  }
  await stop()
  throw new Error(`containerd did not start: ${log.join('').slice(-2000)}`)
}
