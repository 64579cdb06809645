import {readFileSync, rmSync} from 'node:fs'
import {open, readFile, rm} from 'node:fs/promises'
import {FerryError} from '../errors.js'
import {dirname} from 'node:path'
import {onForcedExit} from '../interrupt.js'
import {syncDir} from './atomic-file.js'

export interface PidLock {
  path: string
  release(): Promise<void>
}

/** True when a process with this pid exists (EPERM means it exists but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Locks this process holds: removed at exit whatever way the process ends (short of SIGKILL or a power cut). */
const held = new Set<string>()
let exitHook = false

function hold(path: string): void {
  held.add(path)
  if (exitHook) return
  exitHook = true
  process.on('exit', () => {
    for (const p of held) removeIfOurs(p)
  })
}

/** Removes a lock file at exit if it still names this process (synchronous: the process is ending). */
function removeIfOurs(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim().split(/\s+/)[0] === String(process.pid)) rmSync(path, {force: true})
  } catch {
    // gone already, or nothing more can be done at exit: the next run breaks a lock whose pid is gone
  }
}

let boot: string | undefined

/** This boot's id (Linux: /proc/sys/kernel/random/boot_id); empty where there is none. */
export function bootId(): string {
  if (boot === undefined) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    } catch {
      boot = ''
    }
  }
  return boot
}

/**
 * The live process holding a lock file (`<pid> <boot id>`), else undefined: the file is missing or empty
 * (a kill between create and write), its pid is gone, or it was written before the last boot (a power
 * cut while it was held: its pid may belong to another process now).
 */
export async function lockHolder(path: string): Promise<number | undefined> {
  const [pidText, bootText] = (await readFile(path, 'utf8').catch(() => '')).trim().split(/\s+/)
  const pid = Number.parseInt(pidText ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  if (bootText && bootId() && bootText !== bootId()) return undefined
  return processAlive(pid) ? pid : undefined
}

/**
 * A lock file created with O_EXCL holding the owner's pid and the boot it runs in. A lock whose pid is
 * gone (the owner was killed) or that was written before the last boot (a power cut while it was held) is
 * broken, so neither kill -9 nor a pulled plug leaves things locked.
 * A live owner → FerryError busy (exit 8).
 */
export async function acquirePidLock(path: string, what: string): Promise<PidLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644)
      try {
        await fh.writeFile(`${process.pid} ${bootId()}\n`.replace(' \n', '\n'))
        await fh.close()
      } catch (err) {
        // A lock that could not say who holds it (a full disk) is not left behind.
        await fh.close().catch(() => undefined)
        await rm(path, {force: true}).catch(() => undefined)
        throw err
      }
      // A process ended at once (a second Ctrl-C, process.exit) still leaves no lock behind.
      hold(path)
      const forget = onForcedExit(() => removeIfOurs(path))
      const release = async () => {
        forget()
        await rm(path, {force: true})
        held.delete(path)
        // The removal is made durable, so a power cut right after cannot bring the lock back. (Once the
        // file is gone, a folder that cannot be flushed does not fail the command that held it.)
        await syncDir(dirname(path)).catch(() => undefined)
      }
      return {path, release}
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const owner = await lockHolder(path)
    if (owner !== undefined && owner !== process.pid) {
      throw new FerryError('busy', 'LOCKED', `${what} is busy: process ${owner} holds ${path}; wait for it to finish`)
    }
    // Stale (owner gone, from before a reboot, or file empty from a kill between create and write): break it and retry.
    await rm(path, {force: true})
  }
  throw new FerryError('busy', 'LOCKED', `${what} is busy: could not take ${path}`)
}
