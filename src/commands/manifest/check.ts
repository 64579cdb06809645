import {Args} from '@oclif/core'
import {BaseCommand} from '../../cli/base-command.js'
import {loadManifest} from '../../manifest/load.js'

export default class ManifestCheck extends BaseCommand {
  static summary = 'Check a manifest without contacting any upstream.'

  static description = `Validates the YAML and every field; errors name the file, the line and the field (exit 2). Nothing is fetched: "ferry manifest lock" resolves the artifacts.`

  static examples = [
    '<%= config.bin %> manifest check manifests/site.yaml',
    '<%= config.bin %> manifest check manifests/site.yaml --json',
  ]

  static args = {
    manifest: Args.string({description: 'manifest file (YAML)', required: true}),
  }

  async run() {
    const {args} = await this.parse(ManifestCheck)
    const {manifest, path} = await loadManifest(args.manifest)
    const {spec} = manifest
    const counts = {vm: spec.vm.length, files: spec.files.length, images: spec.images.length, health: spec.health.length}
    this.say(`${args.manifest}: ok (${manifest.metadata.name} ${manifest.metadata.version}, platforms ${spec.platforms.join(', ')})`)
    return {path, name: manifest.metadata.name, version: manifest.metadata.version, platforms: spec.platforms, k3s: Boolean(spec.k3s), kubernetes: Boolean(spec.kubernetes), ...counts}
  }
}
