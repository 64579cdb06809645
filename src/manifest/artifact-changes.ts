/**
 * Pairs the artifacts of two releases (two locks, or two bundles) into added, removed and changed.
 * An artifact keeps its name across releases, except an image, whose name carries its tag:
 * `registry/app/api:1.4.2` and `registry/app/api:1.4.3` are one image that changed, not one removed
 * and one added. Used by `bundle diff` and the release changelog alike.
 */

/** What the pairing reads of an artifact, from a lock or a bundle.json. */
export interface ComparedArtifact {
  /** the artifact's name: for images the reference (`registry/repo:tag`), possibly under `images/` */
  name: string
  kind: string
  digest: string
  /** the image reference, when the name is not it */
  ref?: string
}

export interface ArtifactPairs<T> {
  added: T[]
  removed: T[]
  changed: Array<{old: T; new: T}>
  unchanged: T[]
}

/** An image reference's repository, without tag and digest: `registry:5000/app/api:1.4.2` → `registry:5000/app/api`. */
export function imageRepository(ref: string): string {
  const at = ref.indexOf('@')
  const named = at === -1 ? ref : ref.slice(0, at)
  const colon = named.lastIndexOf(':')
  return colon > named.lastIndexOf('/') ? named.slice(0, colon) : named
}

/** An image reference's tag (`1.4.2`), or undefined for one named by digest only. */
export function imageTag(ref: string): string | undefined {
  const at = ref.indexOf('@')
  const named = at === -1 ? ref : ref.slice(0, at)
  const colon = named.lastIndexOf(':')
  return colon > named.lastIndexOf('/') ? named.slice(colon + 1) : undefined
}

/** The version an artifact shows: the recorded one (k3s, Kubernetes), else an image's tag. */
export function artifactVersion(a: {kind: string; version?: string; ref?: string; name: string}): string | undefined {
  if (a.version) return a.version
  return a.kind === 'image' ? imageTag(a.ref ?? a.name) : undefined
}

/** What stays the same when an image's tag moves: kind and repository (other artifacts: their name). */
function family(a: ComparedArtifact): string {
  if (a.kind !== 'image') return `${a.kind} ${a.name}`
  return `image ${imageRepository(a.ref ?? a.name.replace(/^images\//, ''))}`
}

/**
 * Artifacts with the same name are the same artifact (changed when the digest differs); what is
 * left is paired by family, in order, so a retagged image (a new tag, whatever its digest) is
 * changed; the rest is added or removed. `news` order is kept, removals in `olds` order.
 */
export function pairArtifacts<T extends ComparedArtifact>(olds: T[], news: T[]): ArtifactPairs<T> {
  const byName = new Map(olds.map((a) => [a.name, a]))
  const newNames = new Set(news.map((a) => a.name))
  const left = new Map<string, T[]>()
  for (const old of olds) if (!newNames.has(old.name)) left.set(family(old), [...(left.get(family(old)) ?? []), old])
  const out: ArtifactPairs<T> = {added: [], removed: [], changed: [], unchanged: []}
  const paired = new Set<T>()
  for (const a of news) {
    const old = byName.get(a.name) ?? left.get(family(a))?.shift()
    if (!old) out.added.push(a)
    else if (old.name === a.name && old.digest === a.digest) out.unchanged.push(a)
    else {
      out.changed.push({old, new: a})
      paired.add(old)
    }
  }
  out.removed = olds.filter((o) => !newNames.has(o.name) && !paired.has(o))
  return out
}
