import {stat} from 'node:fs/promises'
import {join} from 'node:path'
import {usageError} from '../errors.js'
import {readIndex} from './folder.js'

export interface ListedRelease {
  version: string
  path: string
  sha256: string
  size: number
  created: string
  deltas: Array<{from: string; path: string; size: number}>
  changelog: {md: string; json: string}
}

/**
 * The releases a folder holds, oldest first, as its releases.json records them: only complete
 * releases are ever recorded, so nothing a run is still making (or a killed run left) shows.
 */
export async function listReleases(dir: string): Promise<{dir: string; name?: string; releases: ListedRelease[]}> {
  const info = await stat(dir).catch(() => undefined)
  if (!info?.isDirectory()) throw usageError('NOT_FOUND', `${dir}: no such folder; give the release folder that "ferry release run --out" writes`)
  const index = await readIndex(dir)
  if (!index) return {dir, releases: []}
  return {
    dir,
    name: index.name,
    releases: index.releases.map((r) => ({
      version: r.version,
      path: join(dir, r.bundle.path),
      sha256: r.bundle.sha256,
      size: r.bundle.size,
      created: r.created,
      deltas: r.deltas.map((d) => ({from: d.from, path: join(dir, d.path), size: d.size})),
      changelog: {md: join(dir, r.changelog.md), json: join(dir, r.changelog.json)},
    })),
  }
}
