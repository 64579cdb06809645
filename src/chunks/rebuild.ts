import {randomBytes} from 'node:crypto'
import {type FileHandle, open, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {renameDurable} from '../store/atomic-file.js'
import {remoteHash, returnSlab, takeSlab} from '../store/hash-pool.js'
import {asLocalIoError, integrityError} from '../errors.js'
import type {ProgressListener} from '../progress.js'
import type {ChunkIndex} from './index-format.js'
import {type BaseChunks, type ChunkStep, planChunks} from './plan.js'
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

interface Slab {
  buffer: Buffer
  /** its write and its checks */
  busy: Promise<unknown>
  /** the chunks it holds, in order */
  steps: ChunkStep[]
}

/** Adjacent chunks from one source, read in one call: in a monthly image most of the base comes in long runs. */
interface Run {
  source: RandomSource
  from: ChunkStep['from']
  /** offset in the source */
  offset: number
  /** where in the slab */
  fill: number
  length: number
  /** the slab's steps it covers: [first, first + count) */
  first: number
  count: number
}

const chunkError = (what: string, step: ChunkStep) => {
  const where = step.from === 'pack' ? 'the delta\'s pack' : 'the base copy'
  const fix = step.from === 'pack' ? 'the delta bundle is corrupt; write it again' : 'the base copy is missing or corrupt; import the full bundle'
  return integrityError(step.from === 'pack' ? 'PACK_CORRUPT' : 'BASE_CORRUPT', `${what}: chunk ${step.i} (at byte ${step.at}) from ${where} does not match its index: ${fix}`, {artifact: what})
}

/**
 * Rebuilds a chunked file from its base and pack as a stream: neighbouring chunks are read
 * together (1 MiB slabs), each chunk's sha256 is checked against the index on one hash thread
 * while the whole file's sha256 runs on another, which also writes the slab. With `target`, the
 * bytes go to a temp file in `tempDir` (default: beside it), fsynced and renamed into place only
 * when everything matched; a failure leaves nothing behind. A mismatch is exit 3 naming the
 * artifact and whether the base copy or the pack is at fault.
 */
export async function rebuildChunked(input: RebuildInput, target?: string, tempDir = target && dirname(target)): Promise<void> {
  const {index, what} = input
  if (index.size !== input.expect.size) throw integrityError('BAD_CHUNK_INDEX', `the chunk index of ${what} is for ${index.size} bytes, but the artifact is ${input.expect.size}`)
  const temp = target && join(tempDir!, `.${basename(target)}.${randomBytes(4).toString('hex')}.rebuild`)
  let out: FileHandle | undefined
  const whole = remoteHash()
  const checker = remoteHash({apart: whole})
  const slabs: Slab[] = Array.from({length: SLABS}, () => ({buffer: takeSlab(SLAB_BYTES), busy: Promise.resolve(), steps: []}))
  let failure: unknown
  try {
    if (temp) out = await open(temp, 'wx', 0o644).catch((err) => {
      throw asLocalIoError(err, `cannot write ${temp}`)
    })
    let turn = 0
    let fill = 0
    let written = 0
    let lastReport = 0
    let run: Run | undefined
    const readRun = async () => {
      if (!run) return
      const r = run
      run = undefined
      const got = await readFully(r.source, slabs[turn].buffer, r.fill, r.length, r.offset)
      if (got === r.length) return
      // the source ends early: name the first chunk it did not give whole
      const steps = slabs[turn].steps
      let at = 0
      let k = r.first
      while (at + steps[k].length <= got) at += steps[k++].length
      throw chunkError(what, steps[k])
    }
    const dispatch = async () => {
      await readRun()
      const slab = slabs[turn]
      const view = slab.buffer.subarray(0, fill)
      const at = written
      written += fill
      fill = 0
      const steps = slab.steps
      const expect = Buffer.allocUnsafe(32 * steps.length)
      steps.forEach((step, k) => index.hashAt(step.i).copy(expect, 32 * k))
      const stored = (out ? whole.updateAndWrite(view, out.fd, at) : whole.update(view)).catch((err: unknown) => {
        failure ??= asLocalIoError(err, `writing ${target}`)
      })
      const checked = checker.checkChunks(view, steps.map((step) => step.length), expect).then((bad) => {
        if (bad >= 0) failure ??= chunkError(what, steps[bad])
      })
      slab.busy = Promise.all([stored, checked]).catch((err: unknown) => {
        failure ??= err
      })
      turn = (turn + 1) % SLABS
      await slabs[turn].busy
      slabs[turn].steps = []
      if (failure) throw failure
      input.onSlab?.()
      if (input.onProgress && written - lastReport >= 8 << 20) {
        lastReport = written
        input.onProgress({phase: 'rebuild', item: what, done: written, total: index.size})
      }
    }
    for (const step of planChunks(index, input.base)) {
      if (fill + step.length > SLAB_BYTES) await dispatch()
      const source = step.from === 'pack' ? input.pack : input.sources[step.from]
      if (run && (run.from !== step.from || run.offset + run.length !== step.offset)) await readRun()
      const steps = slabs[turn].steps
      if (run) {
        run.length += step.length
        run.count++
      } else {
        run = {source, from: step.from, offset: step.offset, fill, length: step.length, first: steps.length, count: 1}
      }
      steps.push(step)
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
    checker.drop()
    await Promise.all(slabs.map((s) => s.busy))
    for (const s of slabs) returnSlab(s.buffer)
    if (out) await out.close().catch(() => undefined)
    if (temp) await rm(temp, {force: true})
  }
}
