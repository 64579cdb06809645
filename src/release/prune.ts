import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {syncDir} from '../store/atomic-file.js'
import {filesOf, type ReleaseEntry} from './folder.js'

export interface PrunePlan {
  /** the releases that stay, each with only the deltas whose base stays too */
  kept: ReleaseEntry[]
  /** file names to remove once the index without them is written */
  files: string[]
  /** versions of the full releases removed */
  versions: string[]
}

/**
 * Keeps the newest `keep` full releases (the newest always, whatever `keep` says) and drops every
 * delta whose base or target is gone. Releases are in index order, oldest first.
 */
export function planPrune(releases: ReleaseEntry[], keep: number): PrunePlan {
  const cut = Math.max(0, releases.length - Math.max(1, keep))
  const gone = releases.slice(0, cut)
  const stay = releases.slice(cut)
  const versions = new Set(stay.map((r) => r.version))
  const files = gone.flatMap(filesOf)
  const kept = stay.map((r) => {
    const deltas = r.deltas.filter((d) => versions.has(d.from))
    files.push(...r.deltas.filter((d) => !versions.has(d.from)).map((d) => d.path))
    return {...r, deltas}
  })
  return {kept, files, versions: gone.map((r) => r.version)}
}

/** Removes the files a prune dropped from the index (after that index is written). */
export async function removePruned(dir: string, files: string[]): Promise<void> {
  for (const file of files) await rm(join(dir, file), {force: true})
  if (files.length) await syncDir(dir)
}
