import type {LockedArtifact} from '../manifest/lock-format.js'
import type {K3sSpec} from '../manifest/schema.js'
import {isReleaseTag} from '../manifest/schema.js'
import {FerryError, upstreamError, usageError} from '../errors.js'
import {requireChecksum} from './checksums.js'
import type {ResolveContext} from './resolve-context.js'

/**
 * K3s releases as k3s-io publishes them: `<base>/<version>/<asset>` (the "+" of
 * the version written %2B), one binary and one air-gap image archive per arch,
 * and `sha256sum-<arch>.txt` listing both.
 */
const BINARY_ASSET: Record<string, string> = {amd64: 'k3s', arm64: 'k3s-arm64', arm: 'k3s-armhf'}

export const K3S_ARCHES = Object.keys(BINARY_ASSET)

/** The arch part of linux platforms (`linux/arm/v7` → `arm`); other OSes carry no k3s. */
export function linuxArches(platforms: string[]): string[] {
  return [...new Set(platforms.filter((p) => p.startsWith('linux/')).map((p) => p.split('/')[1]))]
}

/** The manifest's platform for an arch (keeping a variant such as linux/arm/v7), else linux/<arch>. */
export function platformFor(arch: string, platforms: string[]): string {
  return platforms.find((p) => p.startsWith(`linux/${arch}/`)) ?? `linux/${arch}`
}

export async function resolveK3s(spec: K3sSpec, platforms: string[], ctx: ResolveContext): Promise<LockedArtifact[]> {
  const arches = spec.arches ?? linuxArches(platforms)
  const unsupported = arches.filter((a) => !(a in BINARY_ASSET))
  if (unsupported.length > 0 || arches.length === 0) {
    throw usageError(
      'K3S_ARCH',
      `spec.k3s: no k3s build for ${unsupported.length ? unsupported.map((a) => `linux/${a}`).join(', ') : 'the platforms listed'}; ` +
        `k3s is built for ${K3S_ARCHES.join(', ')}: set spec.k3s.arches or spec.platforms`,
    )
  }
  const version = spec.version ?? (await resolveChannel(spec.channelUrl, spec.channel!, ctx))
  const release = `${spec.base.replace(/\/+$/, '')}/${encodeURIComponent(version)}`
  const perArch = await Promise.all(arches.map((arch) => resolveArch(release, version, arch, platformFor(arch, platforms), spec.airgapImages, ctx)))
  return perArch.flat()
}

async function resolveArch(release: string, version: string, arch: string, platform: string, airgapImages: boolean, ctx: ResolveContext): Promise<LockedArtifact[]> {
  const checksumUrl = `${release}/sha256sum-${arch}.txt`
  const list = (await ctx.fetchSmall(checksumUrl)).toString('utf8')
  const wanted = [
    {asset: BINARY_ASSET[arch], name: `k3s/k3s-${arch}`, dest: 'bin/k3s', mediaType: 'application/octet-stream'},
    ...(airgapImages
      ? [
          {
            asset: `k3s-airgap-images-${arch}.tar.zst`,
            name: `k3s/k3s-airgap-images-${arch}.tar.zst`,
            dest: `images/k3s-airgap-images-${arch}.tar.zst`,
            mediaType: 'application/zstd',
          },
        ]
      : []),
  ]
  return Promise.all(
    wanted.map(async (w) => {
      const url = `${release}/${w.asset}`
      const sha256 = requireChecksum(list, w.asset, checksumUrl)
      return {
        name: w.name,
        kind: 'k3s' as const,
        url,
        sha256,
        size: await ctx.sizeOf(url, sha256, w.name),
        mediaType: w.mediaType,
        dest: w.dest,
        platform,
        version,
        upstream: {verifiedBy: 'checksum-file' as const, checksumUrl},
      }
    }),
  )
}

/**
 * Asks a k3s channel server which release a channel points at. Like
 * update.k3s.io, `<channelUrl>/<channel>` answers with a redirect whose last
 * path segment is the release tag (…/releases/tag/v1.30.4+k3s1).
 */
async function resolveChannel(channelUrl: string, channel: string, ctx: ResolveContext): Promise<string> {
  const url = `${channelUrl.replace(/\/+$/, '')}/${encodeURIComponent(channel)}`
  let res: {status: number; location?: string}
  try {
    res = await ctx.redirectOf(url)
  } catch (err) {
    const reason = err instanceof FerryError ? err.message : (err as Error).message
    throw upstreamError('CHANNEL_UNREACHABLE', `k3s channel server ${url} did not answer (${reason}); check the network, the proxy or spec.k3s.channelUrl`, err)
  }
  const location = res.location
  if (res.status === 404) {
    throw upstreamError('CHANNEL_UNKNOWN', `k3s channel "${channel}" does not exist at ${channelUrl} (HTTP 404); check spec.k3s.channel`)
  }
  if (res.status < 300 || res.status >= 400 || !location) {
    throw upstreamError('CHANNEL_UNRESOLVED', `k3s channel server ${url} answered HTTP ${res.status} without a redirect to a release`)
  }
  const tag = decodeURIComponent(new URL(location, url).pathname.split('/').filter(Boolean).pop() ?? '')
  if (!isReleaseTag(tag)) {
    throw upstreamError('CHANNEL_UNRESOLVED', `k3s channel "${channel}" points at ${location}, which names no k3s release (e.g. v1.30.4+k3s1)`)
  }
  return tag
}
