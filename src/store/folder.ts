import {mkdir, stat} from 'node:fs/promises'
import {dirname} from 'node:path'
import {usageError} from '../errors.js'

/** The nearest of `dir` and its parents that exists and is not a folder. */
async function fileInTheWay(dir: string): Promise<string | undefined> {
  for (let p = dir; ; p = dirname(p)) {
    const info = await stat(p).catch(() => undefined)
    if (info && !info.isDirectory()) return p
    if (info || dirname(p) === p) return undefined
  }
}

/** NOT_A_FOLDER (exit 2) when `dir`, or a parent of it, is a file; `label` names where the path came from (e.g. "--out"). */
export async function refuseFileAsFolder(dir: string, label: string, advice = 'give a folder (it is created if missing)'): Promise<void> {
  const file = await fileInTheWay(dir)
  if (!file) return
  const what = file === dir ? `${label} ${dir} is a file, not a folder` : `${label} ${dir}: ${file} is a file, so this cannot be a folder`
  throw usageError('NOT_A_FOLDER', `${what}; ${advice}`)
}

/** Creates `dir` (and its parents) if missing; a file in the way is NOT_A_FOLDER (exit 2), not a raw EEXIST/ENOTDIR. */
export async function makeFolder(dir: string, label: string): Promise<void> {
  try {
    await mkdir(dir, {recursive: true})
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST' || code === 'ENOTDIR') await refuseFileAsFolder(dir, label)
    throw err
  }
}
