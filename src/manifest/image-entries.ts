import {readFile} from 'node:fs/promises'
import {resolve} from 'node:path'
import {usageError} from '../errors.js'
import {parseCosignKey, type CosignKey} from '../trust/cosign.js'
import {parseImageReference} from '../sources/oci/reference.js'
import type {CosignRule, ImageEntry} from './schema.js'

/** An `images:` entry as the resolver takes it: the reference and the cosign keys it must be signed by (any one). */
export interface ImageToResolve {
  ref: string
  /** the manifest's field, for messages: spec.images[2] */
  field: string
  cosign?: CosignKey[]
}

/** A glob over `registry/repository`: `*` and `?` stay within one path part, `**` crosses parts. */
export function globMatches(glob: string, name: string): boolean {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*'
      i++
    } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`).test(name)
}

/**
 * The manifest's images with their cosign keys read: an entry's own `cosign` names its keys, else
 * every `spec.cosign` rule whose glob matches the image's `registry/repository` adds its keys.
 * A key file is read once however many images name it.
 */
export async function imagesToResolve(images: ImageEntry[], rules: CosignRule[], manifestDir: string): Promise<ImageToResolve[]> {
  const loaded = new Map<string, Promise<CosignKey>>()
  const load = (file: string, field: string) => {
    let pending = loaded.get(file)
    if (!pending) {
      pending = readFile(resolve(manifestDir, file), 'utf8').then(
        (pem) => parseCosignKey(pem, file),
        (err: NodeJS.ErrnoException) => {
          throw usageError('COSIGN_KEY_NOT_FOUND', `${field}: cosign key ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message} (paths are relative to the manifest's folder)`)
        },
      )
      loaded.set(file, pending)
    }
    return pending
  }
  return Promise.all(
    images.map(async (entry, i) => {
      const field = `spec.images[${i}]`
      const ref = typeof entry === 'string' ? entry : entry.ref
      const own = typeof entry === 'string' ? undefined : entry.cosign
      let files: Array<{file: string; field: string}> = own ? (own.keys ?? [own.key!]).map((file) => ({file, field: `${field}.cosign`})) : []
      const parsed = parseImageReference(ref, manifestDir)
      if (!own && parsed.transport === 'registry') {
        const name = `${parsed.registry}/${parsed.repository}`
        files = rules.flatMap((rule, r) => (globMatches(rule.match, name) ? (rule.keys ?? [rule.key!]).map((file) => ({file, field: `spec.cosign[${r}]`})) : []))
      }
      if (files.length === 0) return {ref, field}
      if (parsed.transport !== 'registry') {
        throw usageError('COSIGN_NOT_REGISTRY', `${field}: ${ref} is a local layout; cosign signatures are looked up in a registry (push the image, or drop "cosign")`)
      }
      const keys = await Promise.all([...new Map(files.map((f) => [f.file, f])).values()].map((f) => load(f.file, f.field)))
      return {ref, field, cosign: keys}
    }),
  )
}
