import {Args, Flags} from '@oclif/core'
import {openBundleInput} from '../../bundle/input.js'
import {verifyBundleStream} from '../../bundle/verify.js'
import {BaseCommand} from '../../cli/base-command.js'
import {trustedKeyFlag} from '../../cli/flags.js'
import {readPublicKeys} from '../../trust/keys.js'
import {usageError} from '../../errors.js'
import {formatBytes} from '../../format.js'

export default class BundleVerify extends BaseCommand {
  static summary = 'Check a bundle end to end: signature, expiry, every byte.'

  static description = `One streaming pass over the bundle in constant memory: bundle.json's signature is checked against the keys you trust before anything else is believed, then every blob is hashed as it streams by and checked against the signed digests, and the OCI image graph must close.

A delta is checked against its base (--base): the blobs it leaves out must be there, and each chunked artifact (a VM image carried as a pack of new chunks) is rebuilt as a stream from the base's copy and the pack, every chunk and the whole file's sha256 checked; nothing is written.

The SBOM and provenance the bundle carries must describe it: every artifact listed with its digest.

Refused with exit 3 (integrity): corrupt, truncated, extra, missing, duplicated, misplaced or unsafe entries (links, absolute paths, ".."), wrong digests or sizes, an SBOM or provenance that does not match the bundle (DOCUMENT_MISMATCH). Refused with exit 4 (trust): no signature, a signature by a key you did not give, an expired bundle.`

  static examples = [
    '<%= config.bin %> bundle verify bundles/edge-site-2026.11.0.ferry.tar --key keys/release.pub.asc',
    '<%= config.bin %> bundle verify edge-site-2026.11.0.ferry.tar -k old.pub.asc -k new.pub.asc --json',
  ]

  static args = {
    bundle: Args.string({description: 'bundle: a .ferry.tar, a stick folder or a .parts.json (parts are read as one stream)', required: true}),
  }

  static flags = {
    key: trustedKeyFlag,
    base: Flags.string({description: 'For a delta bundle: the bundle it was built against (.ferry.tar, stick folder or parts.json); the blobs the delta leaves out are checked there.'}),
  }

  async run() {
    const {args, flags} = await this.parse(BundleVerify)
    const input = await openBundleInput(args.bundle)
    if (!flags.key?.length) throw usageError('NO_KEY', 'give the public key(s) the bundle must be signed by with --key PUB.asc (the .pub.asc that "ferry keys generate" wrote beside the signing key)')
    const keys = await readPublicKeys(flags.key)
    // a delta's base, and the code that reads one, only when one is given
    const base = flags.base ? await (await import('../../bundle/delta-base.js')).loadVerifyBase(flags.base, this.progress()) : undefined
    const report = await verifyBundleStream(input.open(), {keys, totalSize: input.size, onProgress: this.progress(), ...(base ? {base} : {})})
    const m = report.manifest
    // only a delta has chunked artifacts to rebuild: a full bundle's check loads none of that code
    const rebuilt = base ? await (await import('../../bundle/chunk-rebuild.js')).verifyRebuilds(m, {path: input.label, offsets: report.offsets}, base, this.progress()) : 0
    this.say(`OK ${input.label}: ${m.name} ${m.version}, ${report.blobs} blobs, ${formatBytes(report.bytes)}`)
    this.say(`  signed by ${report.signers.map((s) => s.fingerprint).join(', ')}; expires ${m.expires}`)
    // not the file's sha256 (bundle build and usb write print that): the digest deltas and devices name the release by
    this.say(`  bundle.json digest ${report.manifestDigest} (names this release in deltas and on devices; not the file's sha256)`)
    if (m.base) this.say(`  delta from ${m.base.name} ${m.base.version}: ${m.omitted?.length ?? 0} blob(s) found in the base`)
    if (rebuilt) this.say(`  ${rebuilt} chunked artifact(s) rebuilt from the base and the pack: every chunk and the whole file match`)
    if (report.documentsChecked.length) this.say(`  ${report.documentsChecked.join(' and ')} describe exactly what it carries`)
    return {
      path: input.label,
      name: m.name,
      version: m.version,
      expires: m.expires,
      signers: report.signers.map((s) => s.fingerprint),
      blobs: report.blobs,
      bytes: report.bytes,
      /** sha256 of bundle.json, not of the file */
      digest: report.manifestDigest,
      documents: report.documentsChecked,
      ...(m.base ? {base: m.base, omitted: m.omitted ?? [], rebuilt} : {}),
    }
  }
}
