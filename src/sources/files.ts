import type {LockedArtifact} from '../manifest/lock-format.js'
import type {FileSpec} from '../manifest/schema.js'
import {urlBasename, type ResolveContext} from './resolve-context.js'

/** Plain files pinned by sha256 in the manifest; the device puts them at `dest` (default files/<basename>). */
export async function resolveFiles(files: FileSpec[], ctx: ResolveContext): Promise<LockedArtifact[]> {
  return Promise.all(
    files.map(async (f, i) => {
      const file = urlBasename(f.url, `spec.files[${i}].url`)
      const name = `files/${f.name ?? file}`
      return {
        name,
        kind: 'file' as const,
        url: f.url,
        sha256: f.sha256,
        size: await ctx.sizeOf(f.url, f.sha256, name),
        mediaType: 'application/octet-stream',
        dest: f.dest ?? `files/${file}`,
        upstream: {verifiedBy: 'sha256' as const},
        ...(f.delta === 'chunks' ? {delta: 'chunks' as const} : {}),
      }
    }),
  )
}
