import {randomBytes} from 'node:crypto'
import {mkdir, open, readFile, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {syncDir} from '../bundle/write.js'
import {FerryError} from '../ui/errors.js'
import type {DevicePaths} from './paths.js'
import {DeviceState} from './state-format.js'

const INITIAL: DeviceState = {schema: 'ferry.device-state/v1', state: 'idle', trialAttempts: 0, updated: new Date(0).toISOString()}

/** Reads state.json; a device never touched by Ferry is `idle` with nothing installed. */
export async function readState(paths: DevicePaths): Promise<DeviceState> {
  let text: string
  try {
    text = await readFile(paths.state, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {...INITIAL}
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new FerryError('integrity', 'STATE_CORRUPT', `${paths.state} is not valid JSON; it is only ever replaced by an atomic rename, so the disk may be failing`)
  }
  const parsed = DeviceState.safeParse(raw)
  if (!parsed.success) throw new FerryError('integrity', 'STATE_CORRUPT', `${paths.state}: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`)
  return parsed.data
}

/** Writes a file so that a power cut leaves either the old content or the new: temp, fsync, rename, fsync dir. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(path), {recursive: true})
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fh = await open(temp, 'wx', 0o644)
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(temp, path)
  } catch (err) {
    await rm(temp, {force: true})
    throw err
  }
  await syncDir(dirname(path))
}

/** Records the next state in the journal. Call it BEFORE the side effect it announces. */
export async function writeState(paths: DevicePaths, state: DeviceState): Promise<DeviceState> {
  const next = DeviceState.parse({...state, updated: new Date().toISOString()})
  await writeFileAtomic(paths.state, JSON.stringify(next, null, 2) + '\n')
  return next
}
