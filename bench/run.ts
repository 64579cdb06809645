// `npm run bench`: every figure is a ratio to a peer tool measured in the same run.
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {benchBuildHttp} from './build-http.js'
import {benchDeviceImport} from './device-import.js'
import {benchImages} from './images.js'
import {benchUsb} from './usb.js'

const only = process.argv[2]
const benches: Array<[string, (work: string) => Promise<string[]>]> = [['http', benchBuildHttp], ['usb', benchUsb], ['images', benchImages], ['device-import', benchDeviceImport]]

const work = await mkdtemp(join(process.env.FERRY_BENCH_DIR ?? tmpdir(), 'ferry-bench-'))
try {
  for (const [name, bench] of benches) {
    if (only && only !== name) continue
    console.log(`\n== ${name} ==`)
    for (const line of await bench(join(work, name))) console.log(line)
  }
} finally {
  await rm(work, {recursive: true, force: true})
}
