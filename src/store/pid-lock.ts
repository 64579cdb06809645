import {readFileSync, rmSync} from 'node:fs'
import {open, readFile, rm} from 'node:fs/promises'
import {FerryError} from '../errors.js'
import {onForcedExit} from '../interrupt.js'
import {unlinkDurable} from './atomic-file.js'

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

/**
 * Which process a pid names (Linux): this boot's id and the process's start time. A lock file keeps it
 * beside the pid, so a pid that another process took after a reboot or a crash is not taken for the
 * owner (a lock left on disk by a power cut would otherwise keep a monthly job busy for good).
 * Undefined where /proc cannot tell.
 */
function processIdentity(pid: number): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after "(comm)": state is field 3, starttime field 22
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    return start ? `${boot} ${start}` : undefined
  } catch {
    return undefined
  }
}

/**
 * The pid of the live process that holds a lock whose file says `text` (`<pid>` and, since locks
 * carry it, a line with that process's identity), or undefined when that process is gone, or its
 * pid now names another process.
 */
export function lockOwner(text: string): number | undefined {
  const [first, second] = text.split('\n')
  const pid = Number.parseInt(first ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return undefined
  const recorded = second?.trim()
  if (recorded) {
    const current = processIdentity(pid)
    if (current !== undefined && current !== recorded) return undefined
  }
  return pid
}

/**
 * A lock file created with O_EXCL holding the owner's pid (first line) and its identity (second). A
 * lock whose owner is gone (killed, or the machine rebooted) is broken, so kill -9 never leaves things
 * locked. A live owner → FerryError busy (exit 8).
 */
export async function acquirePidLock(path: string, what: string): Promise<PidLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644)
      try {
        await fh.writeFile(`${process.pid}\n${processIdentity(process.pid) ?? ''}\n`)
        await fh.close()
      } catch (err) {
        // A lock that could not say who holds it (a full disk) is not left behind.
        await fh.close().catch(() => undefined)
        await rm(path, {force: true}).catch(() => undefined)
        throw err
      }
      // A process ended at once by a second Ctrl-C still leaves no lock behind.
      const forget = onForcedExit(() => {
        if (readFileSync(path, 'utf8').split('\n')[0] === String(process.pid)) rmSync(path, {force: true})
      })
      return {
        path,
        // The removal is made durable: a lock a power cut brought back could name a pid that lives again after boot.
        release: async () => {
          forget()
          await unlinkDurable(path)
        },
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const owner = lockOwner(await readFile(path, 'utf8').catch(() => ''))
    if (owner !== undefined && owner !== process.pid) {
      throw new FerryError('busy', 'LOCKED', `${what} is busy: process ${owner} holds ${path}; wait for it to finish`)
    }
    // Stale (owner gone, or file empty from a kill between create and write): break it and retry.
    await rm(path, {force: true})
  }
  throw new FerryError('busy', 'LOCKED', `${what} is busy: could not take ${path}`)
}
