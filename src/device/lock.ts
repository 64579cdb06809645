import {mkdirDurable} from '../store/atomic-file.js'
import {acquirePidLock} from '../store/pid-lock.js'
import type {DevicePaths} from './paths.js'

/** Runs `work` holding the device lock, so imports, applies and trust edits never interleave (busy → exit 8). */
export async function withDeviceLock<T>(paths: DevicePaths, work: () => Promise<T>): Promise<T> {
  await mkdirDurable(paths.base)
  const lock = await acquirePidLock(paths.lock, 'the device')
  try {
    return await work()
  } finally {
    await lock.release()
  }
}
