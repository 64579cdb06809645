/** Media types of OCI and Docker image documents, and the Accept header that asks for any of them. */
export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const

export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ')

export const isIndexType = (t: string | undefined) => t === MEDIA.ociIndex || t === MEDIA.dockerList
export const isManifestType = (t: string | undefined) => t === MEDIA.ociManifest || t === MEDIA.dockerManifest
export const isSchema1Type = (t: string | undefined) => t === MEDIA.dockerSchema1 || t === MEDIA.dockerSchema1Signed
