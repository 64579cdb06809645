import {join} from 'node:path'
import {readJsonFile} from '../store/json-file.js'
import {type DevicePaths, type SlotName, slotDir} from './paths.js'
import {SlotManifest} from './state-format.js'

/** <slot>/release.json, written last by import. */
export function slotManifestPath(paths: DevicePaths, slot: SlotName): string {
  return join(slotDir(paths, slot), 'release.json')
}

/** What a slot holds; `undefined` when the slot is empty (never imported, or an import never finished). */
export async function readSlotManifest(paths: DevicePaths, slot: SlotName): Promise<SlotManifest | undefined> {
  return readJsonFile(slotManifestPath(paths, slot), SlotManifest, 'SLOT_CORRUPT', 'import the release again')
}
