import {Args, Flags} from '@oclif/core'
import {readStoredDocument, writeDocumentFile} from '../bundle/document-read.js'
import {openBundleInput} from '../bundle/input.js'
import {readPublicKeys} from '../trust/keys.js'
import {BaseCommand} from './base-command.js'
import {trustedKeyFlag} from './flags.js'

/**
 * `bundle sbom` and `bundle provenance`: the stored bytes of one document a bundle carries,
 * printed exactly (or written with --out); with --json, the envelope holds it parsed.
 */
export abstract class DocumentCommand extends BaseCommand {
  static args = {
    bundle: Args.string({description: 'bundle: a .ferry.tar, a stick folder or a .parts.json', required: true}),
  }

  static flags = {
    out: Flags.string({char: 'o', description: 'Write the document to this file (its exact bytes) instead of printing it.'}),
    key: trustedKeyFlag,
  }

  protected abstract readonly mediaType: string
  protected abstract readonly what: string

  protected async show(args: {bundle: string}, flags: {out?: string; key?: string[]}) {
    const keys = flags.key?.length ? await readPublicKeys(flags.key) : []
    const input = await openBundleInput(args.bundle)
    const doc = await readStoredDocument(input, this.mediaType, this.what, keys)
    const m = doc.manifest
    if (flags.out) {
      await writeDocumentFile(flags.out, doc.bytes)
      this.say(`wrote ${flags.out}: the ${this.what} of ${m.name} ${m.version} (${doc.bytes.length} bytes, ${doc.artifact.digest})${doc.verifiedBy ? `, bundle.json signed by ${doc.verifiedBy.join(', ')}` : ''}`)
    } else if (!this.jsonEnabled()) {
      this.stopProgress()
      process.stdout.write(doc.bytes)
    }
    return {
      path: input.label,
      name: m.name,
      version: m.version,
      digest: doc.artifact.digest,
      size: doc.artifact.size,
      mediaType: doc.artifact.mediaType,
      verifiedBy: doc.verifiedBy ?? null,
      ...(flags.out ? {out: flags.out} : {}),
      document: JSON.parse(doc.bytes.toString('utf8')) as unknown,
    }
  }
}
