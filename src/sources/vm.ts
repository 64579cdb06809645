import {resolve} from 'node:path'
import type {LockedArtifact, UpstreamProof} from '../manifest/lock-format.js'
import type {VmImage} from '../manifest/schema.js'
import {readPublicKeys} from '../trust/keys.js'
import {verifyDetached} from '../trust/verify.js'
import {requireChecksum} from './checksums.js'
import {urlBasename, type ResolveContext} from './resolve-context.js'

/**
 * VM images (Azure Linux / Mariner VHDX, qcow2, ISO). The digest comes from the
 * manifest (sha256) or from an upstream checksum file; when that file carries a
 * detached OpenPGP signature, the signature is checked over the file's exact
 * bytes before a single line of it is believed.
 */
const MEDIA_TYPES: Record<string, string> = {
  vhdx: 'application/vnd.ferry.vm.vhdx',
  vhd: 'application/vnd.ferry.vm.vhd',
  qcow2: 'application/vnd.ferry.vm.qcow2',
  iso: 'application/vnd.ferry.vm.iso',
}

export function vmMediaType(fileName: string): string {
  const ext = /\.([a-z0-9]+)$/i.exec(fileName)?.[1]?.toLowerCase()
  return (ext && MEDIA_TYPES[ext]) || 'application/octet-stream'
}

interface TrustedList {
  text: string
  proof: UpstreamProof
}

export async function resolveVms(vms: VmImage[], ctx: ResolveContext): Promise<LockedArtifact[]> {
  // Several images may share one signed checksum file: check it once.
  const lists = new Map<string, Promise<TrustedList>>()
  const listFor = (vm: VmImage, checksums: string) => {
    const key = `${checksums} ${vm.signature?.url ?? ''} ${vm.signature?.key ?? ''}`
    let pending = lists.get(key)
    if (!pending) {
      pending = trustedList(checksums, vm.signature, ctx)
      lists.set(key, pending)
    }
    return pending
  }
  return Promise.all(
    vms.map(async (vm, i) => {
      const file = urlBasename(vm.url, `spec.vm[${i}].url`)
      let sha256: string
      let upstream: UpstreamProof
      if (vm.checksums) {
        const list = await listFor(vm, vm.checksums)
        sha256 = requireChecksum(list.text, file, vm.checksums)
        upstream = list.proof
      } else {
        sha256 = vm.sha256!
        upstream = {verifiedBy: 'sha256'}
      }
      const name = `vm/${vm.name}`
      return {
        name,
        kind: 'vm' as const,
        url: vm.url,
        sha256,
        size: await ctx.sizeOf(vm.url, sha256, name),
        mediaType: vmMediaType(file),
        dest: `vm/${file}`,
        upstream,
        ...(vm.delta === 'whole' ? {delta: 'whole' as const} : {}),
      }
    }),
  )
}

async function trustedList(checksumUrl: string, signature: VmImage['signature'], ctx: ResolveContext): Promise<TrustedList> {
  const bytes = await ctx.fetchSmall(checksumUrl)
  if (!signature) return {text: bytes.toString('utf8'), proof: {verifiedBy: 'checksum-file', checksumUrl}}
  const [sig, keys] = await Promise.all([ctx.fetchSmall(signature.url), readPublicKeys([resolve(ctx.manifestDir, signature.key)], 'the manifest\'s signature.key')])
  const result = await verifyDetached(new Uint8Array(bytes), new Uint8Array(sig), keys, {
    what: `signature ${signature.url} over checksum file ${checksumUrl} (key ${signature.key})`,
  })
  return {
    text: bytes.toString('utf8'),
    proof: {verifiedBy: 'checksum-file+pgp', checksumUrl, signatureUrl: signature.url, key: result.signers[0].fingerprint},
  }
}
