import {upstreamError} from '../../errors.js'
import type {RegistryClient} from './registry-client.js'

/** Whether the repository already holds the blob (HEAD). */
export async function hasBlob(client: RegistryClient, repo: string, digest: string): Promise<boolean> {
  const res = await client.request(repo, `/v2/${repo}/blobs/${digest}`, {method: 'HEAD', push: true})
  res.close()
  if (res.status === 404) return false
  if (!res.ok) throw await client.failure(res, `${client.registry}/${repo} blob ${digest}`)
  return true
}

/** Links a blob from another repository of the same registry without sending it; false when refused. */
export async function mountBlob(client: RegistryClient, repo: string, digest: string, from: string): Promise<boolean> {
  const res = await client.request(repo, `/v2/${repo}/blobs/uploads/?mount=${digest}&from=${encodeURIComponent(from)}`, {method: 'POST', push: true, alsoPull: [from]})
  res.close()
  if (res.status === 201) return true
  if (res.status === 202) {
    // The registry opened an upload instead: close it, the bytes come another way.
    const location = res.headers.get('location')
    if (location) await client.request(repo, new URL(location, res.url).toString(), {method: 'DELETE', push: true}).catch(() => undefined)
    return false
  }
  throw await client.failure(res, `${client.registry}/${repo} mount of ${digest}`)
}

/** Uploads a blob in one PUT (the registry checks the digest when it completes the upload). */
export async function uploadBlob(client: RegistryClient, repo: string, digest: string, size: number, body: AsyncIterable<Uint8Array>): Promise<void> {
  const what = `${client.registry}/${repo} upload of ${digest}`
  const start = await client.request(repo, `/v2/${repo}/blobs/uploads/`, {method: 'POST', push: true})
  start.close()
  const location = start.headers.get('location')
  if (start.status !== 202 || !location) throw await client.failure(start, what)
  const url = new URL(location, start.url)
  url.searchParams.set('digest', digest)
  const res = await client.request(repo, url.toString(), {
    method: 'PUT',
    push: true,
    headers: {'Content-Type': 'application/octet-stream', 'Content-Length': String(size)},
    body,
  })
  if (res.status !== 201) throw await client.failure(res, what)
  res.close()
}

/** PUTs a manifest or index under a tag or its digest. */
export async function putManifest(client: RegistryClient, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<void> {
  const res = await client.request(repo, `/v2/${repo}/manifests/${reference}`, {method: 'PUT', push: true, headers: {'Content-Type': mediaType}, body: bytes})
  if (res.status !== 201) {
    const err = await client.failure(res, `${client.registry}/${repo}:${reference}`)
    throw err instanceof Error ? err : upstreamError('PUSH_FAILED', `${client.registry}/${repo}:${reference}: the registry refused the manifest`)
  }
  res.close()
}
