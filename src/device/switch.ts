import {randomBytes} from 'node:crypto'
import {readlink, rename, rm, symlink} from 'node:fs/promises'
import {join} from 'node:path'
import {syncDir} from '../store/atomic-file.js'
import type {DevicePaths, SlotName} from './paths.js'

/**
 * `current` is a relative symlink `current -> slots/<x>`. Everything a release installs (k3s and
 * kubernetes binaries under bin/, files) lives inside its slot, and the host reaches it through
 * `current`, so one rename switches binaries and files together.
 */
export async function readCurrentSlot(paths: DevicePaths): Promise<SlotName | undefined> {
  let target: string
  try {
    target = await readlink(paths.current)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    throw err
  }
  const match = /(?:^|\/)slots\/([ab])\/?$/.exec(target)
  return match ? (match[1] as SlotName) : undefined
}

/**
 * Points `current` at a slot, or removes it (`undefined`, a device that never committed a release),
 * atomically: a temp symlink renamed over the old one, then the folder fsynced. Idempotent.
 */
export async function pointCurrentAt(paths: DevicePaths, slot: SlotName | undefined): Promise<void> {
  if ((await readCurrentSlot(paths)) === slot && slot !== undefined) return
  if (slot === undefined) {
    await rm(paths.current, {force: true})
  } else {
    const temp = join(paths.base, `.current.${randomBytes(4).toString('hex')}.tmp`)
    await symlink(join('slots', slot), temp)
    try {
      await rename(temp, paths.current)
    } catch (err) {
      await rm(temp, {force: true})
      throw err
    }
  }
  await syncDir(paths.base)
}
