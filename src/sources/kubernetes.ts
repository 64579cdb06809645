import type {LockedArtifact} from '../manifest/lock-format.js'
import type {KubernetesSpec} from '../manifest/schema.js'
import {usageError} from '../errors.js'
import {requireChecksum} from './checksums.js'
import {linuxArches, platformFor} from './k3s.js'
import type {ResolveContext} from './resolve-context.js'

/**
 * Kubernetes binaries laid out as dl.k8s.io publishes them:
 * `<base>/release/<version>/bin/linux/<arch>/<bin>`, each beside `<bin>.sha256`
 * holding only the hex digest.
 */
export const KUBERNETES_ARCHES = ['amd64', 'arm64', 'arm', 'ppc64le', 's390x']

export async function resolveKubernetes(spec: KubernetesSpec, platforms: string[], ctx: ResolveContext): Promise<LockedArtifact[]> {
  const arches = spec.arches ?? linuxArches(platforms)
  const unsupported = arches.filter((a) => !KUBERNETES_ARCHES.includes(a))
  if (unsupported.length > 0 || arches.length === 0) {
    throw usageError(
      'KUBERNETES_ARCH',
      `spec.kubernetes: no Kubernetes build for ${unsupported.length ? unsupported.map((a) => `linux/${a}`).join(', ') : 'the platforms listed'}; ` +
        `set spec.kubernetes.arches (${KUBERNETES_ARCHES.join(', ')}) or spec.platforms`,
    )
  }
  const base = spec.base.replace(/\/+$/, '')
  const jobs = arches.flatMap((arch) => spec.binaries.map((bin) => ({arch, bin})))
  return Promise.all(
    jobs.map(async ({arch, bin}) => {
      const url = `${base}/release/${spec.version}/bin/linux/${arch}/${bin}`
      const checksumUrl = `${url}.sha256`
      const name = `kubernetes/${bin}-${arch}`
      const sha256 = requireChecksum((await ctx.fetchSmall(checksumUrl)).toString('utf8'), bin, checksumUrl)
      return {
        name,
        kind: 'kubernetes' as const,
        url,
        sha256,
        size: await ctx.sizeOf(url, sha256, name),
        mediaType: 'application/octet-stream',
        dest: `bin/${bin}`,
        platform: platformFor(arch, platforms),
        version: spec.version,
        upstream: {verifiedBy: 'checksum-file' as const, checksumUrl},
      }
    }),
  )
}
