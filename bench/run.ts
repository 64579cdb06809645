// `npm run bench`: every figure is a ratio to a peer tool measured in the same run.
import {mkdtemp, rm, statfs} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {benchBuildHttp} from './build-http.js'
import {benchChunkedDelta} from './chunked-delta.js'
import {benchDeviceImport} from './device-import.js'
import {benchImages} from './images.js'
import {benchUsb} from './usb.js'

const only = process.argv[2]
const benches: Array<[string, (work: string) => Promise<string[]>]> = [['http', benchBuildHttp], ['usb', benchUsb], ['images', benchImages], ['device-import', benchDeviceImport], ['chunked-delta', benchChunkedDelta]]

// Every tool of a comparison reads and writes in this one folder. tmpfs by default (when it has room),
// so the figures compare software rather than this machine's disk; FERRY_BENCH_DIR picks another.
async function benchRoot(): Promise<string> {
  if (process.env.FERRY_BENCH_DIR) return process.env.FERRY_BENCH_DIR
  const fs = await statfs('/dev/shm').catch(() => undefined)
  return fs && fs.bavail * fs.bsize >= 8 * 2 ** 30 ? '/dev/shm' : tmpdir()
}
const root = await benchRoot()
const onTmpfs = (await statfs(root)).type === 0x01021994
console.log(`work folder: ${root} (${onTmpfs ? 'tmpfs: software compared, disk left out' : 'disk: figures include its write and flush speed'}); fsync kept on both sides`)
const work = await mkdtemp(join(root, 'ferry-bench-'))
try {
  for (const [name, bench] of benches) {
    if (only && only !== name) continue
    console.log(`\n== ${name} ==`)
    for (const line of await bench(join(work, name))) console.log(line)
  }
} finally {
  await rm(work, {recursive: true, force: true})
}
