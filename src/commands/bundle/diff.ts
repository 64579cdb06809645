import {Args} from '@oclif/core'
import {diffBundles, type Change} from '../../bundle/diff.js'
import {openBundleInput} from '../../bundle/input.js'
import {BaseCommand} from '../../cli/base-command.js'
import {formatBytes} from '../../format.js'
import {imageRepository} from '../../manifest/artifact-changes.js'

export default class BundleDiff extends BaseCommand {
  static summary = 'Show what changed between two bundles, and what a delta would carry.'

  static description = `Compares OLD and NEW by what they carry: artifacts (VM images, binaries, files) by name and container images by reference, each added, removed or changed (another digest, or for an image another tag of the same repository: old → new), with its version (k3s and Kubernetes releases, an image's tag). Ends with the bytes a delta from OLD ("bundle build --since OLD") would carry: the blobs of NEW that OLD lacks. Reads only bundle.json and the archives' headers; it does not verify (use "ferry bundle verify").`

  static examples = ['<%= config.bin %> bundle diff bundles/edge-site-2026.10.0.ferry.tar bundles/edge-site-2026.11.0.ferry.tar']

  static args = {
    old: Args.string({description: 'the older bundle', required: true}),
    new: Args.string({description: 'the newer bundle', required: true}),
  }

  async run() {
    const {args} = await this.parse(BundleDiff)
    const diff = await diffBundles(await openBundleInput(args.old), await openBundleInput(args.new))
    this.say(`${diff.old.name} ${diff.old.version} → ${diff.new.name} ${diff.new.version}`)
    const show = (title: string, group: {added: Change[]; removed: Change[]; changed: Change[]}) => {
      const n = group.added.length + group.removed.length + group.changed.length
      this.say(`  ${title}: ${n === 0 ? 'no change' : ''}`)
      const v = (x?: string) => x ?? '-'
      for (const c of group.added) this.say(`    + ${c.name}  ${v(c.toVersion)}  ${c.to!.slice(0, 19)}  ${formatBytes(c.size)}`)
      for (const c of group.removed) this.say(`    - ${c.name}  ${v(c.fromVersion)}  ${c.from!.slice(0, 19)}`)
      for (const c of group.changed) {
        // a moved tag: the image by its repository, its versions say the rest
        const name = c.previous ? imageRepository(c.name) : c.name
        const versions = c.fromVersion || c.toVersion ? `  ${v(c.fromVersion)} → ${v(c.toVersion)}` : ''
        this.say(`    ~ ${name}${versions}  ${c.from!.slice(0, 19)} → ${c.to!.slice(0, 19)}  ${formatBytes(c.size)}`)
      }
    }
    show('artifacts', diff.artifacts)
    show('images', diff.images)
    for (const c of diff.chunked.filter((x) => x.carried === 'chunks')) {
      this.say(`  ${c.name}: ${c.chunks} chunks, ${c.reused} in the old bundle, ${formatBytes(c.newBytes)} new`)
    }
    this.say(`  a delta would carry ${diff.delta.blobs} blob(s), ${formatBytes(diff.delta.bytes)} (the full bundle: ${diff.full.blobs}, ${formatBytes(diff.full.bytes)})`)
    return diff
  }
}
