import {createHash} from 'node:crypto'
import {integrityError} from '../../errors.js'
import {withRetries} from '../http-retry.js'
import {MAX_DOCUMENT} from './document.js'
import {MANIFEST_ACCEPT} from './media-types.js'
import type {RegistryClient} from './registry-client.js'

/**
 * The bytes of an image manifest or index a repository holds, by digest: as a manifest, else as a
 * plain blob (how a push keeps an index the registry would not take as a manifest, e.g. one whose
 * other platforms were left out). Undefined when the repository has neither. The bytes must hash
 * to the digest, so whatever the registry holds is only believed as far as the caller's digest is.
 */
export async function fetchDocument(client: RegistryClient, repo: string, digest: string): Promise<Buffer | undefined> {
  return (await fetchAs(client, repo, 'manifests', digest)) ?? (await fetchAs(client, repo, 'blobs', digest))
}

async function fetchAs(client: RegistryClient, repo: string, kind: 'manifests' | 'blobs', digest: string): Promise<Buffer | undefined> {
  const what = `${client.registry}/${repo} ${kind === 'manifests' ? 'manifest' : 'blob'} ${digest}`
  return withRetries(client.policy, client.classify(what), async () => {
    const res = await client.request(repo, `/v2/${repo}/${kind}/${digest}`, {headers: {Accept: MANIFEST_ACCEPT}})
    if (res.status === 404) {
      res.close()
      return undefined
    }
    if (!res.ok) throw await client.failure(res, what)
    const bytes = await readCapped(res.body, MAX_DOCUMENT, `${what} is larger than ${MAX_DOCUMENT} bytes: not an image document`)
    const actual = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
    if (actual !== digest) throw integrityError('DIGEST_MISMATCH', `${what}: the bytes the registry sent hash to ${actual}; the registry or a proxy changed them`)
    return bytes
  })
}

/** A small answer body (a document, a config) read whole; TOO_LARGE (`tooLarge` as the message) once it passes `max` bytes. */
export async function readCapped(body: AsyncIterable<Buffer>, max: number, tooLarge: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) throw integrityError('TOO_LARGE', tooLarge)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}
