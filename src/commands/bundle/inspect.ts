import {Args} from '@oclif/core'
import {isBundleDocument} from '../../bundle/documents.js'
import {openBundleInput} from '../../bundle/input.js'
import {inspectBundle} from '../../bundle/inspect.js'
import {BaseCommand} from '../../cli/base-command.js'
import {trustedKeyFlag} from '../../cli/flags.js'
import {readPublicKeys} from '../../trust/keys.js'
import {formatBytes} from '../../format.js'

export default class BundleInspect extends BaseCommand {
  static summary = 'Show what a bundle carries, without reading all of it.'

  static description = `Reads bundle.json and its signature from the head of the bundle and shows name, version, created, expires, the signers' key fingerprints and every artifact with its version (k3s and Kubernetes releases, an image's tag), size and sha256 (an image's: its manifest digest). Fast on any size. With --key, the signature is also checked; the blobs are not (use "ferry bundle verify").`

  static examples = [
    '<%= config.bin %> bundle inspect bundles/edge-site-2026.11.0.ferry.tar',
    '<%= config.bin %> bundle inspect edge-site-2026.11.0.ferry.tar --key keys/release.pub.asc --json',
  ]

  static args = {
    bundle: Args.string({description: 'bundle file (.ferry.tar)', required: true}),
  }

  static flags = {
    key: trustedKeyFlag,
  }

  async run() {
    const {args, flags} = await this.parse(BundleInspect)
    const keys = flags.key?.length ? await readPublicKeys(flags.key) : []
    const info = await inspectBundle(await openBundleInput(args.bundle), keys)
    const m = info.manifest
    this.say(`${m.name} ${m.version}  (${formatBytes(info.size)})`)
    this.say(`  created   ${m.created}`)
    this.say(`  expires   ${m.expires}`)
    this.say(`  platforms ${m.platforms.join(', ')}`)
    this.say(`  signers   ${info.signatureKeys.join(', ')}${info.verifiedBy ? '  (verified)' : '  (not verified: give --key)'}`)
    if (m.base) this.say(`  delta from ${m.base.name} ${m.base.version}; ${m.omitted?.length ?? 0} blob(s) left out`)
    this.say(`  artifacts:`)
    const files = m.artifacts.filter((a) => a.kind !== 'image' && !isBundleDocument(a))
    const documents = m.artifacts.filter(isBundleDocument)
    const width = Math.max(...files.map((a) => a.name.length), 4)
    const vw = Math.max(...files.map((a) => (a.version ?? '-').length), 7)
    if (files.length) this.say(`    ${'name'.padEnd(width)}  ${'kind'.padEnd(10)} ${'version'.padEnd(vw)} ${'size'.padStart(10)}  ${'sha256 of the file'.padEnd(19)}  verified by`)
    for (const a of files) {
      this.say(`    ${a.name.padEnd(width)}  ${a.kind.padEnd(10)} ${(a.version ?? '-').padEnd(vw)} ${formatBytes(a.size).padStart(10)}  ${a.digest.slice(0, 19)}  ${a.upstream.verifiedBy}`)
    }
    if (info.images.length) {
      this.say(`  images:`)
      const w = Math.max(...info.images.map((i) => i.ref.length), 9)
      const iw = Math.max(...info.images.map((i) => (i.version ?? '-').length), 7)
      this.say(`    ${'reference'.padEnd(w)}  ${'version'.padEnd(iw)}  ${'manifest digest'.padEnd(19)}  ${'platforms'.padEnd(12)} ${'size'.padStart(10)}  signature`)
      for (const i of info.images) {
        this.say(`    ${i.ref.padEnd(w)}  ${(i.version ?? '-').padEnd(iw)}  ${i.digest.slice(0, 19)}  ${(i.platforms?.join(',') ?? '-').padEnd(12)} ${formatBytes(i.size).padStart(10)}  ${i.signedBy ? `signed by ${i.signedBy.key}` : 'no signature required'}`)
      }
    }
    if (info.chunked.length) {
      this.say(`  chunked:`)
      const w = Math.max(...info.chunked.map((c) => c.name.length))
      for (const c of info.chunked) {
        const how = c.carried === 'chunks' ? `${c.reused} reused, ${formatBytes(c.newBytes)} new (pack)` : c.carried === 'omitted' ? 'unchanged (in the base)' : `carried whole, ${formatBytes(c.newBytes)}`
        this.say(`    ${c.name.padEnd(w)}  ${String(c.chunks).padStart(7)} chunks  ${how}`)
      }
    }
    if (documents.length) {
      this.say(`  documents (ferry bundle sbom / provenance):`)
      for (const d of documents) this.say(`    ${d.name}  ${d.mediaType}  ${formatBytes(d.size)}  ${d.digest.slice(0, 19)}`)
    }
    if (m.health.length) this.say(`  health checks: ${m.health.map((h) => h.name).join(', ')}`)
    return {path: info.path, size: info.size, ...m, signatureKeys: info.signatureKeys, verifiedBy: info.verifiedBy ?? null, images: info.images, chunked: info.chunked, documents: documents.map((d) => ({name: d.name, mediaType: d.mediaType, digest: d.digest, size: d.size}))}
  }
}
