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
 * A lock file created with O_EXCL holding the owner's pid. A lock whose pid is
 * gone (the owner was killed) is broken, so kill -9 never leaves things locked.
 * A live owner → FerryError busy (exit 8).
 */
export async function acquirePidLock(path: string, what: string): Promise<PidLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644)
      try {
        await fh.writeFile(`${process.pid}\n`)
        await fh.close()
      } catch (err) {
        // A lock that could not say who holds it (a full disk) is not left behind.
        await fh.close().catch(() => undefined)
        await rm(path, {force: true}).catch(() => undefined)
        throw err
      }
      // A process ended at once by a second Ctrl-C still leaves no lock behind.
      const forget = onForcedExit(() => {
        if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, {force: true})
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
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10)
    if (Number.isInteger(owner) && owner > 0 && processAlive(owner) && owner !== process.pid) {
      throw new FerryError('busy', 'LOCKED', `${what} is busy: process ${owner} holds ${path}; wait for it to finish`)
    }
    // Stale (owner gone, or file empty from a kill between create and write): break it and retry.
    await rm(path, {force: true})
  }
  throw new FerryError('busy', 'LOCKED', `${what} is busy: could not take ${path}`)
}
