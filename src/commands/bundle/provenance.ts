import {PROVENANCE_MEDIA_TYPE} from '../../attest/identity.js'
import {DocumentCommand} from '../../cli/document-command.js'

export default class BundleProvenance extends DocumentCommand {
  static summary = 'Print the SLSA provenance a bundle carries (an in-toto Statement v1), byte for byte.'

  static description = `Every bundle carries an in-toto Statement v1 with an SLSA provenance v1 predicate: every artifact and the SBOM as subjects (name and sha256), the lock (by digest) and the manifest fields it resolved as the build's parameters, every upstream URL and image (and its cosign signature) with its digest as resolved dependencies, and Ferry's version as the builder. It is an artifact of bundle.json, so the bundle's signature covers it; its bytes are checked against that digest before they are printed. With --key, bundle.json's signature is checked too (exit 4 if no key verifies it).

A bundle built before Ferry wrote provenance is exit 2; a damaged one exit 3.`

  static examples = [
    '<%= config.bin %> bundle provenance bundles/edge-site-2026.11.0.ferry.tar > edge-site.intoto.json',
    '<%= config.bin %> bundle provenance /media/usb --key keys/release.pub.asc --json',
  ]

  static args = DocumentCommand.args
  static flags = DocumentCommand.flags

  protected readonly mediaType = PROVENANCE_MEDIA_TYPE
  protected readonly what = 'provenance'

  async run() {
    const {args, flags} = await this.parse(BundleProvenance)
    return this.show(args, flags)
  }
}
