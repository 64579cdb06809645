import {createHash, randomBytes} from 'node:crypto'
import {type FileHandle, open, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {renameDurable} from '../store/atomic-file.js'
import {remoteHash, returnSlab, takeSlab} from '../store/hash-pool.js'
import {asLocalIoError, integrityError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import type {ChunkIndex} from './index-format.js'
import {type BaseChunks, planChunks} from './plan.js'
import {type RandomSource, readFully} from './sources.js'

export interface RebuildInput {
  /** the new file's index (signed, through the bundle) */
  index: ChunkIndex
  base: BaseChunks
  /** the base artifacts' bytes, in the order of `delta.base` */
  sources: RandomSource[]
  pack: RandomSource
  /** the whole file's sha256 and size, as upstream published them */
  expect: {digest: string; size: number}
  /** names the artifact in messages */
  what: string
  onProgress?: ProgressListener
  /** reached after each slab of the output, for crash tests */
  onSlab?: () => void
}

const SLAB_BYTES = 1 << 20
const SLABS = 4

/**
 * Rebuilds a chunked file from its base and pack as a stream: every chunk's sha256 is checked
 * against the index as it is read, the whole file's sha256 on a hash thread beside it. With
 * `target`, the bytes go to a temp file in `tempDir` (default: beside it; written by the hash thread), fsynced
 * and renamed into place only when everything matched; a failure leaves nothing behind.
 * A mismatch is exit 3 naming the artifact and whether the base copy or the pack is at fault.
 */
export async function rebuildChunked(input: RebuildInput, target?: string, tempDir = target && dirname(target)): Promise<void> {
  const {index, what} = input
  if (index.size !== input.expect.size) throw integrityError('BAD_CHUNK_INDEX', `the chunk index of ${what} is for ${index.size} bytes, but the artifact is ${input.expect.size}`)
  const temp = target && join(tempDir!, `.${basename(target)}.${randomBytes(4).toString('hex')}.rebuild`)
  let out: FileHandle | undefined
  const whole = remoteHash()
  const slabs = Array.from({length: SLABS}, () => ({buffer: takeSlab(SLAB_BYTES), busy: Promise.resolve() as Promise<unknown>}))
  let failure: unknown
  try {
    if (temp) out = await open(temp, 'wx', 0o644).catch((err) => {
      throw asLocalIoError(err, `cannot write ${temp}`)
    })
    let turn = 0
    let fill = 0
    let written = 0
    let lastReport = 0
    const dispatch = async () => {
      const slab = slabs[turn]
      const view = slab.buffer.subarray(0, fill)
      const at = written
      written += fill
      fill = 0
      slab.busy = (out ? whole.updateAndWrite(view, out.fd, at) : whole.update(view)).catch((err: unknown) => {
        failure ??= asLocalIoError(err, `writing ${target}`)
      })
      turn = (turn + 1) % SLABS
      await slabs[turn].busy
      if (failure) throw failure
      input.onSlab?.()
      if (input.onProgress && written - lastReport >= 8 << 20) {
        lastReport = written
        input.onProgress({phase: 'rebuild', item: what, done: written, total: index.size})
      }
    }
    for (const step of planChunks(index, input.base)) {
      if (fill + step.length > SLAB_BYTES) await dispatch()
      const buffer = slabs[turn].buffer
      const source = step.from === 'pack' ? input.pack : input.sources[step.from]
      const got = await readFully(source, buffer, fill, step.length, step.offset)
      const view = buffer.subarray(fill, fill + step.length)
      if (got !== step.length || !createHash('sha256').update(view).digest().equals(index.hashAt(step.i))) {
        const where = step.from === 'pack' ? 'the delta\'s pack' : 'the base copy'
        const fix = step.from === 'pack' ? 'the delta bundle is corrupt; write it again' : 'the base copy is missing or corrupt; import the full bundle'
        throw integrityError(step.from === 'pack' ? 'PACK_CORRUPT' : 'BASE_CORRUPT', `${what}: chunk ${step.i} (at byte ${step.at}) from ${where} does not match its index: ${fix}`, {artifact: what})
      }
      fill += step.length
    }
    if (fill > 0) await dispatch()
    await Promise.all(slabs.map((s) => s.busy))
    if (failure) throw failure
    const digest = await whole.digest()
    if (digest !== input.expect.digest) throw integrityError('DIGEST_MISMATCH', `${what}: the rebuilt file is ${digest}, not ${input.expect.digest}`, {artifact: what})
    input.onProgress?.({phase: 'rebuild', item: what, done: written, total: index.size})
    if (out && temp && target) {
      await out.sync()
      await out.close()
      out = undefined
      await renameDurable(temp, target)
    }
  } catch (err) {
    whole.drop()
    throw err
  } finally {
    await Promise.all(slabs.map((s) => s.busy))
    for (const s of slabs) returnSlab(s.buffer)
    if (out) await out.close().catch(() => undefined)
    if (temp) await rm(temp, {force: true})
  }
}
