import {mkdir} from 'node:fs/promises'
import {acquirePidLock} from '../store/pid-lock.js'
import type {DevicePaths} from './paths.js'

/** Runs `work` holding the device lock, so imports, applies and trust edits never interleave (busy → exit 8). */
export async function withDeviceLock<T>(paths: DevicePaths, work: () => Promise<T>): Promise<T> {
  await mkdir(paths.base, {recursive: true})
  const lock = await acquirePidLock(paths.lock, 'the device')
  try {
    return await work()
  } finally {
    await lock.release()
  }
}
