import {mkdir} from 'node:fs/promises'
import {basename, join, relative} from 'node:path'
import {openBundleInput} from '../bundle/input.js'
import {verifyBundleStream} from '../bundle/verify.js'
import {verifyMedia} from '../media/media-check.js'
import {writeBundleToMedia} from '../media/parts-writer.js'
import {readPublicKeys} from '../trust/keys.js'
import type {ProgressListener} from '../ui/progress.js'

export interface DemoUsbInput {
  bundle: string
  size: number
  name: string
  version: string
  publicKey: string
  /** the demo's work folder; the stick stands in at <work>/stick */
  work: string
  say: (line: string) => void
  onProgress?: ProgressListener
}

/** The quick start's media step: the bundle goes to a folder standing in for a USB stick, split in three, and is verified there. */
export async function demoUsbStep(input: DemoUsbInput): Promise<{stick: string; parts: number}> {
  const stick = join(input.work, 'stick')
  await mkdir(stick, {recursive: true})
  const partSize = Math.ceil(input.size / 3 / (1 << 20)) * (1 << 20)
  const file = basename(input.bundle)
  const written = await writeBundleToMedia({path: input.bundle, size: input.size, file, name: input.name, version: input.version}, stick, {partSize, onProgress: input.onProgress})
  const where = relative(process.cwd(), stick) || '.'
  input.say(`6. wrote it to ${where} (standing in for a USB stick) as ${written.parts.parts.length} parts + ${basename(written.partsFile)}, every byte read back`)
  await verifyMedia(stick, file, input.onProgress)
  const bundle = await openBundleInput(stick)
  await verifyBundleStream(bundle.open(), {keys: await readPublicKeys([input.publicKey]), totalSize: bundle.size, onProgress: input.onProgress})
  input.say(`7. verified it from the stick: the parts read as one stream, never joined on disk`)
  return {stick, parts: written.parts.parts.length}
}
