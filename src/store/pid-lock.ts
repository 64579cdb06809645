import {readFileSync, rmSync} from 'node:fs'
import {open, readFile, rm} from 'node:fs/promises'
import {dirname} from 'node:path'
import {FerryError} from '../errors.js'
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

/** When the process with this pid started (Linux: field 22 of /proc/PID/stat), undefined where /proc cannot tell. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after "(comm)": state is field 3, starttime field 22
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] || undefined
  } catch {
    return undefined
  }
}

/**
 * The pid of the live process that holds a lock whose file says `text`, else undefined. A lock file
 * holds `<pid>` and, since locks carry them, the boot it was taken in and the owner's start time
 * (`<pid>\n<boot id> <start time>`). The lock is stale when the file is empty (a kill between create and
 * write), its pid is gone, it was written in another boot (a power cut while it was held), or its pid
 * now names another process (one that started later).
 */
export function lockOwner(text: string): number | undefined {
  const [pidText, bootText, startText] = text.trim().split(/\s+/)
  const pid = Number.parseInt(pidText ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return undefined
  if (bootText && bootId() && bootText !== bootId()) return undefined
  if (startText) {
    const current = startTime(pid)
    if (current !== undefined && current !== startText) return undefined
  }
  return pid
}

/** The live process holding the lock file at `path`, else undefined (see lockOwner). */
export async function lockHolder(path: string): Promise<number | undefined> {
  return lockOwner(await readFile(path, 'utf8').catch(() => ''))
}

/**
 * A lock file created with O_EXCL holding the owner's pid, the boot it runs in and its start time. A
 * lock whose owner is gone (killed), that was written before the last boot (a pulled plug) or whose pid
 * another process took since is broken, so neither kill -9 nor a power cut leaves things locked.
 * A live owner → FerryError busy (exit 8).
 */
export async function acquirePidLock(path: string, what: string): Promise<PidLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644)
      try {
        const identity = [bootId(), startTime(process.pid)].filter(Boolean).join(' ')
        await fh.writeFile(`${process.pid}\n${identity}\n`)
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
    // Stale: break it and retry.
    await rm(path, {force: true})
  }
  throw new FerryError('busy', 'LOCKED', `${what} is busy: could not take ${path}`)
}
