// USB write + read-back of a ~1 GB bundle to ext4 on a loop device, against `cp` + `sync` + `sha256sum`
// (and `openssl dgst -sha256`) of the same bytes into the same filesystem, same run; then the size of a
// delta bundle for a one-artifact change against the bytes that changed.
import {mkdir, readdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {makeExt4Stick} from '../test/helpers/fat.js'
import {makeBundleFactory} from '../test/helpers/usb-bundle.js'
import {FERRY, median, memRow, row, run} from './lib.js'

const MiB = 1 << 20

async function empty(dir: string): Promise<void> {
  for (const n of await readdir(dir)) if (n !== 'lost+found') await rm(join(dir, n), {recursive: true, force: true})
}

export async function benchUsb(work: string, rounds = 3): Promise<string[]> {
  const lines: string[] = []
  await mkdir(work, {recursive: true})
  const factory = await makeBundleFactory(join(work, 'build'), 'bench')
  const stick = await makeExt4Stick(join(work, 'stick'), 2600, {solid: true})
  try {
    const bundle = await factory.build('1.0.0', [
      {name: 'vm.vhdx', size: 768 * MiB, seed: 'vm-1'},
      {name: 'k3s', size: 240 * MiB, seed: 'k3s-1'},
      {name: 'site.tar', size: 16 * MiB, seed: 'site-1'},
    ])
    const ours: number[] = []
    const peerSha: number[] = []
    const peerSsl: number[] = []
    let peak = 0
    const copy = join(stick.dir, 'copy.tar')
    const ferry = async () => {
      await empty(stick.dir)
      const w = await run([...FERRY, 'usb', 'write', bundle.path, stick.dir, '--part-size', '512MiB', '--json', '-q'])
      peak = Math.max(peak, w.peakMiB)
      return w.seconds
    }
    const peer = async (hash: string) => {
      await empty(stick.dir)
      return (await run(`cp ${bundle.path} ${copy} && sync ${copy} && ${hash} ${copy}`)).seconds
    }
    // One round unmeasured (the stick's first writes), then the order alternates so neither side always goes first.
    await ferry()
    await peer('openssl dgst -sha256')
    for (let r = 0; r < rounds; r++) {
      const first = r % 2 === 0
      if (first) ours.push(await ferry())
      peerSha.push(await peer('sha256sum'))
      peerSsl.push(await peer('openssl dgst -sha256'))
      if (!first) ours.push(await ferry())
    }
    lines.push(`-- USB write + read-back, ${(bundle.size / 1e9).toFixed(2)} GB to ext4 on a loop device (${rounds} rounds, medians) --`)
    lines.push(row('usb write vs cp + sync + sha256sum', median(ours), median(peerSha), 1.2))
    lines.push(row('usb write vs cp + sync + openssl dgst', median(ours), median(peerSsl), 1.2))
    lines.push(memRow('usb write peak RSS', peak))

    const changed = 4 * MiB
    const v2 = await factory.build('1.1.0', [
      {name: 'vm.vhdx', size: 768 * MiB, seed: 'vm-1'},
      {name: 'k3s', size: 240 * MiB, seed: 'k3s-1'},
      {name: 'site.tar', size: changed, seed: 'site-2'},
    ])
    const d = await run([...FERRY, 'bundle', 'build', v2.lockPath, '--key', factory.priv, '--since', bundle.path, '--out', join(work, 'delta'), '--store', join(factory.dir, 'store'), '--json', '-q'])
    const size = JSON.parse(d.stdout).result.size as number
    const limit = changed + MiB
    lines.push(`-- delta for a one-artifact change (${changed / MiB} MiB of ${(v2.size / 1e9).toFixed(2)} GB) --`)
    lines.push(`${'delta bundle size'.padEnd(44)} ${size} bytes  changed ${changed} bytes  (target ≤ changed + 1 MiB = ${limit}: ${size <= limit ? 'ok' : 'OVER TARGET'})`)
  } finally {
    await stick.unmount()
    await factory.close()
  }
  return lines
}
