import {join} from 'node:path'
import {artifactVersion, pairArtifacts} from '../manifest/artifact-changes.js'
import type {LockFile, LockedArtifact} from '../manifest/lock-format.js'
import {writeFileAtomic} from '../store/atomic-file.js'
import {formatBytes} from '../format.js'

/** What a changelog says about one side of an artifact. */
export interface ArtifactSide {
  version?: string
  ref?: string
  digest: string
  size: number
}

export interface ArtifactChange {
  name: string
  kind: LockedArtifact['kind']
  change: 'added' | 'removed' | 'changed'
  old?: ArtifactSide
  new?: ArtifactSide
}

/** `.changes.json`: what a release changed against the one before it, for scripts. */
export interface Changes {
  schema: 'ferry.changes/v1'
  name: string
  version: string
  /** the release before, absent for the first */
  previous?: string
  created: string
  artifacts: ArtifactChange[]
  /** artifacts equal in both */
  unchanged: number
  bundle: {path: string; size: number; sha256: string}
  deltas: Array<{from: string; path: string; size: number}>
}

function side(a: LockedArtifact): ArtifactSide {
  const version = artifactVersion(a)
  return {
    ...(version === undefined ? {} : {version}),
    ...(a.ref === undefined ? {} : {ref: a.ref}),
    digest: `sha256:${a.sha256}`,
    size: a.imageSize ?? a.size,
  }
}

/**
 * Artifacts of `next` against `previous` (none: everything is added), in the lock's order, removals
 * last. An image whose tag moved is changed (old → new ref), as in "bundle diff".
 */
export function compareLocks(previous: LockFile | undefined, next: LockFile): {changes: ArtifactChange[]; unchanged: number} {
  const compared = (a: LockedArtifact) => ({name: a.name, kind: a.kind, digest: `sha256:${a.sha256}`, ref: a.ref, artifact: a})
  const pairs = pairArtifacts((previous?.artifacts ?? []).map(compared), next.artifacts.map(compared))
  const oldOf = new Map(pairs.changed.map((c) => [c.new.artifact, c.old.artifact]))
  const added = new Set(pairs.added.map((x) => x.artifact))
  const changes: ArtifactChange[] = []
  for (const a of next.artifacts) {
    const old = oldOf.get(a)
    if (added.has(a)) changes.push({name: a.name, kind: a.kind, change: 'added', new: side(a)})
    else if (old) changes.push({name: a.name, kind: a.kind, change: 'changed', old: side(old), new: side(a)})
  }
  for (const {artifact: old} of pairs.removed) changes.push({name: old.name, kind: old.kind, change: 'removed', old: side(old)})
  return {changes, unchanged: pairs.unchanged.length}
}

/** True when every artifact (name and digest) of `next` is in `previous` and nothing else is. */
export function sameArtifacts(previous: LockFile, next: LockFile): boolean {
  return compareLocks(previous, next).changes.length === 0
}

const short = (digest: string) => `${digest.slice(0, 'sha256:'.length + 12)}…`

function describe(s: ArtifactSide): string {
  return [s.version, s.ref].filter(Boolean).join(' ') || short(s.digest)
}

/** `.changes.md`: the same facts for people. */
export function renderChanges(c: Changes): string {
  const lines = [`# ${c.name} ${c.version}`, '', c.previous ? `Changes since ${c.previous} (created ${c.created}).` : `First release (created ${c.created}).`, '']
  const group = (title: string, kind: ArtifactChange['change'], line: (x: ArtifactChange) => string) => {
    const items = c.artifacts.filter((x) => x.change === kind)
    if (!items.length) return
    lines.push(`## ${title}`, '', ...items.map((x) => `- ${line(x)}`), '')
  }
  group('Changed', 'changed', (x) => {
    const o = x.old!
    const n = x.new!
    return `${x.name} (${x.kind}): ${describe(o)} → ${describe(n)}; ${short(o.digest)} → ${short(n.digest)}; ${formatBytes(o.size)} → ${formatBytes(n.size)}`
  })
  group('Added', 'added', (x) => `${x.name} (${x.kind}): ${describe(x.new!)}; ${short(x.new!.digest)}; ${formatBytes(x.new!.size)}`)
  group('Removed', 'removed', (x) => `${x.name} (${x.kind}): ${describe(x.old!)}; ${short(x.old!.digest)}; ${formatBytes(x.old!.size)}`)
  lines.push(`${c.unchanged} artifact(s) unchanged.`, '', '## Files', '', `- full bundle ${c.bundle.path}: ${formatBytes(c.bundle.size)}, sha256 ${c.bundle.sha256}`)
  for (const d of c.deltas) lines.push(`- delta from ${d.from} ${d.path}: ${formatBytes(d.size)}`)
  return `${lines.join('\n')}\n`
}

/** Writes both changelog files into `dir` (each by temp file, fsync, rename). */
export async function writeChanges(dir: string, files: {md: string; json: string}, changes: Changes): Promise<void> {
  await writeFileAtomic(join(dir, files.json), `${JSON.stringify(changes, null, 2)}\n`)
  await writeFileAtomic(join(dir, files.md), renderChanges(changes))
}
