import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {FerryError} from '../ui/errors.js'
import {type DevicePaths, type SlotName, slotDir} from './paths.js'
import {SlotManifest} from './state-format.js'

/** <slot>/release.json, written last by import. */
export function slotManifestPath(paths: DevicePaths, slot: SlotName): string {
  return join(slotDir(paths, slot), 'release.json')
}

/** What a slot holds; `undefined` when the slot is empty (never imported, or an import never finished). */
export async function readSlotManifest(paths: DevicePaths, slot: SlotName): Promise<SlotManifest | undefined> {
  const file = slotManifestPath(paths, slot)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new FerryError('integrity', 'SLOT_CORRUPT', `${file} is not valid JSON; import the release again`)
  }
  const parsed = SlotManifest.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new FerryError('integrity', 'SLOT_CORRUPT', `${file}: ${issue.path.join('.') || '(top)'}: ${issue.message}; import the release again`)
  }
  return parsed.data
}
