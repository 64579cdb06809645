import {SBOM_MEDIA_TYPE} from '../../attest/identity.js'
import {DocumentCommand} from '../../cli/document-command.js'

export default class BundleSbom extends DocumentCommand {
  static summary = 'Print the SBOM a bundle carries (CycloneDX 1.6 JSON), byte for byte.'

  static description = `Every bundle carries a CycloneDX 1.6 SBOM of exactly what it ships: each VM image, k3s/Kubernetes binary, file and container image (purl, platforms, manifests, configs and layers), with sha256 hashes, versions, where it was downloaded, and the checksum lists, OpenPGP and cosign keys it was verified with. It is an artifact of bundle.json, so the bundle's signature covers it; its bytes are checked against that digest before they are printed. With --key, bundle.json's signature is checked too (exit 4 if no key verifies it). Reads only the tar headers, bundle.json and the SBOM: fast on any size.

A bundle built before Ferry wrote SBOMs is exit 2; a damaged SBOM exit 3.`

  static examples = [
    '<%= config.bin %> bundle sbom bundles/edge-site-2026.11.0.ferry.tar > edge-site.cdx.json',
    '<%= config.bin %> bundle sbom /media/usb --out edge-site.cdx.json --key keys/release.pub.asc',
    '<%= config.bin %> bundle sbom bundles/edge-site-2026.11.0.ferry.tar --json',
  ]

  static args = DocumentCommand.args
  static flags = DocumentCommand.flags

  protected readonly mediaType = SBOM_MEDIA_TYPE
  protected readonly what = 'SBOM'

  async run() {
    const {args, flags} = await this.parse(BundleSbom)
    return this.show(args, flags)
  }
}
