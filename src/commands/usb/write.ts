import {Args, Flags} from '@oclif/core'
import {stat} from 'node:fs/promises'
import {basename} from 'node:path'
import {bundleFileName} from '../../bundle/format.js'
import {openBundleInput} from '../../bundle/input.js'
import {readBundleHead} from '../../bundle/inspect.js'
import {BaseCommand} from '../../cli/base-command.js'
import {writeBundleToMedia} from '../../media/parts-writer.js'
import {usageError} from '../../errors.js'
import {formatBytes, parseSize} from '../../format.js'

export default class UsbWrite extends BaseCommand {
  static summary = 'Copy a bundle to a mounted USB stick, split into parts, and read it back.'

  static description = `Writes <bundle>.part-000, -001, … and, last, <bundle>.parts.json (the size and sha256 of every part) into DIR, the folder where the stick is mounted. On FAT32 (files below 4 GiB) the bundle is split into parts of 4095 MiB; elsewhere it is one part unless --part-size is given. Free space is checked first where the filesystem reports it.

Every part is written to a temp name, fsynced and renamed, and parts.json comes last, so a stick pulled in the middle never holds a bundle that looks complete. Each part is then read back and compared byte for byte with the bundle, while the next part is written. Run it again after an interruption: parts already on the stick that match are kept, only the rest is written. Several bundles can share one stick.

Exit 6 when the stick is full, removed or fails to write; exit 3 when what is read back differs from what was written.`

  static examples = [
    '<%= config.bin %> usb write bundles/edge-site-2026.11.0.ferry.tar /media/usb',
    '<%= config.bin %> usb write bundles/edge-site-2026.11.0.ferry.tar /media/usb --part-size 1GiB',
  ]

  static interruptible = true

  static args = {
    bundle: Args.string({description: 'bundle file (.ferry.tar)', required: true}),
    dir: Args.string({description: 'folder where the stick is mounted', required: true}),
  }

  static flags = {
    'part-size': Flags.string({description: 'Largest part, in bytes or with K/M/G (KiB/MiB/GiB), e.g. 512MiB. Default: 4095 MiB on FAT32, one part elsewhere.'}),
    'no-verify': Flags.boolean({description: 'Skip reading every byte back after writing (not recommended).'}),
  }

  async run() {
    const {args, flags} = await this.parse(UsbWrite)
    this.onInterrupt(() => `the stick holds no complete copy of the bundle; parts already written are kept: run "ferry usb write ${args.bundle} ${args.dir}" again to write the rest`)
    let partSize: number | undefined
    if (flags['part-size'] !== undefined) {
      try {
        partSize = parseSize(flags['part-size'])
      } catch (err) {
        throw usageError('BAD_PART_SIZE', `--part-size: ${(err as Error).message}`)
      }
      if (partSize < 1) throw usageError('BAD_PART_SIZE', '--part-size must be at least 1 byte')
    }
    const info = await stat(args.bundle).catch(() => undefined)
    if (!info?.isFile()) throw usageError('NOT_A_BUNDLE', `${args.bundle}: no such bundle file (give the .ferry.tar the build wrote)`)
    const head = await readBundleHead(await openBundleInput(args.bundle))
    const m = head.manifest
    const file = basename(args.bundle).endsWith('.ferry.tar') ? basename(args.bundle) : bundleFileName(m.name, m.version)
    const result = await writeBundleToMedia({path: args.bundle, size: info.size, file, name: m.name, version: m.version}, args.dir, {
      partSize,
      verify: !flags['no-verify'],
      onProgress: this.progress(),
    })
    const n = result.parts.parts.length
    this.say(`wrote ${file} to ${args.dir} (${result.filesystem.type}): ${n} part${n === 1 ? '' : 's'}, ${formatBytes(result.parts.size)}`)
    if (result.kept) this.say(`  ${result.kept} part(s) already on the stick and intact were kept`)
    this.say(result.verified ? '  every byte read back and checked' : '  not read back (--no-verify): run "ferry usb verify" before handing the stick over')
    return {
      dir: args.dir,
      partsFile: result.partsFile,
      bundle: file,
      name: m.name,
      version: m.version,
      size: result.parts.size,
      sha256: result.parts.sha256,
      filesystem: result.filesystem.type,
      partSize: result.parts.partSize,
      parts: result.parts.parts,
      written: result.written,
      kept: result.kept,
      verified: result.verified,
    }
  }
}
