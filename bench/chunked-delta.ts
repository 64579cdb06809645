// Chunked delta of a 512 MiB VHDX (qemu-img convert from raw) with 25 scattered 1 MiB changes, plus a
// 64 MiB file with 1 MiB inserted at a random place. Peers, same run: casync (delta size: the chunks
// `casync make` adds to a store holding the old files' chunks; build: `curl` of the new files + that
// `casync make`), and `cp` + `sync` + `openssl dgst -sha256` of the new files for the device import
// (`casync extract` seeded with the old files is shown beside it). The same change on a 128 MiB image
// shows peak memory does not grow with the image.
import {createHash, randomBytes, randomInt} from 'node:crypto'
import {execFileSync} from 'node:child_process'
import {createReadStream} from 'node:fs'
import {mkdir, readdir, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {startFileServer} from '../src/demo/file-server.js'
import {readState, writeState} from '../src/device/journal.js'
import {devicePaths} from '../src/device/paths.js'
import {addTrustedKey, raiseFloor} from '../src/device/trust-store.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {FERRY, memRow, row, run, type Run} from './lib.js'

const MiB = 1 << 20

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, {highWaterMark: MiB})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** A disk-like raw image: 3 MiB of data then 1 MiB of zeros, over and over. */
function rawDisk(size: number): Buffer {
  const raw = Buffer.alloc(size)
  for (let at = 0; at < size; at += 4 * MiB) randomBytes(3 * MiB).copy(raw, at)
  return raw
}

async function du(dir: string): Promise<number> {
  let total = 0
  for (const e of await readdir(dir, {withFileTypes: true, recursive: true})) {
    if (e.isFile()) total += (await stat(join(e.parentPath ?? (e as unknown as {path: string}).path, e.name))).size
  }
  return total
}

interface Scenario {
  /** the delta's build result (--json) */
  delta: {size: number; chunked: Array<{name: string; chunks: number; reused: number; newBytes: number}>}
  build: Run
  imp: Run
  peers?: {make: Run; casyncBytes: number; cp: Run; extract: Run}
}

/** v1 and v2 of an image of `imageMiB` and the 64 MiB file, the delta built and imported; with `peers`, the peers too. */
async function scenario(work: string, imageMiB: number, peers: boolean): Promise<Scenario> {
  const www = join(work, 'www')
  await mkdir(www, {recursive: true})
  const server = await startFileServer({root: www})
  try {
    const keys = await writeKeyPair(join(work, 'keys'), 'bench', await generateKeyPair({name: 'bench', date: new Date(Date.now() - 3600_000)}))
    const raw = rawDisk(imageMiB * MiB)
    const vhdx = async (name: string) => {
      await writeFile(join(work, 'disk.raw'), raw)
      execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', join(work, 'disk.raw'), join(www, name)])
      await rm(join(work, 'disk.raw'))
    }
    await vhdx('edge-1.vhdx')
    const big = randomBytes(64 * MiB)
    await writeFile(join(www, 'data-1.bin'), big)
    for (let i = 0; i < 25; i++) randomBytes(MiB).copy(raw, randomInt(0, raw.length - MiB))
    await vhdx('edge-2.vhdx')
    const at = randomInt(0, big.length)
    await writeFile(join(www, 'data-2.bin'), Buffer.concat([big.subarray(0, at), randomBytes(MiB), big.subarray(at)]))
    const manifest = async (version: string, n: number) => {
      const path = join(work, `site-${version}.yaml`)
      await writeFile(
        path,
        `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: site, version: ${version}}\nspec:\n  vm:\n    - {name: edge, url: ${server.url}/edge-${n}.vhdx, sha256: ${await sha256File(join(www, `edge-${n}.vhdx`))}}\n  files:\n    - {url: ${server.url}/data-${n}.bin, sha256: ${await sha256File(join(www, `data-${n}.bin`))}, name: data.bin, delta: chunks}\n`,
      )
      return path
    }
    const store = join(work, 'store')
    const out = join(work, 'out')
    const v1 = JSON.parse((await run([...FERRY, 'bundle', 'build', await manifest('1.0.0', 1), '--key', keys.private, '--out', out, '--store', store, '--json', '-q'])).stdout).result.path as string
    const v2Manifest = await manifest('2.0.0', 2)
    const lock = join(work, 'site-2.lock.json')
    await run([...FERRY, 'manifest', 'lock', v2Manifest, '--out', lock, '-q', '--store', store])

    // casync: a store that holds the old files' chunks, then the new files fetched and added to it
    const castore = join(work, 'castore')
    const peerDir = join(work, 'peer')
    let make: Run | undefined
    let casyncBytes = 0
    if (peers) {
      for (const f of ['edge-1.vhdx', 'data-1.bin']) await run(['casync', 'make', `--store=${castore}`, join(work, `${f}.caibx`), join(www, f)])
      const before = await du(castore)
      await mkdir(peerDir, {recursive: true})
      make = await run(
        `curl -sf -o ${peerDir}/edge-2.vhdx ${server.url}/edge-2.vhdx && curl -sf -o ${peerDir}/data-2.bin ${server.url}/data-2.bin && ` +
          `casync make --store=${castore} ${peerDir}/edge-2.caibx ${peerDir}/edge-2.vhdx && casync make --store=${castore} ${peerDir}/data-2.caibx ${peerDir}/data-2.bin`,
      )
      casyncBytes = (await du(castore)) - before + (await stat(join(peerDir, 'edge-2.caibx'))).size + (await stat(join(peerDir, 'data-2.caibx'))).size
    }

    const build = await run([...FERRY, 'bundle', 'build', lock, '--key', keys.private, '--out', out, '--store', store, '--since', v1, '--json', '-q'])
    const delta = JSON.parse(build.stdout).result

    // a device running v1 imports the delta; the peer copies the new files, syncs and hashes them
    const root = join(work, 'device')
    const paths = devicePaths(root)
    await addTrustedKey(paths, keys.public)
    await run([...FERRY, 'device', 'import', v1, '--root', root, '--json', '-q'])
    const s = await readState(paths)
    await writeState(paths, {...s, state: 'committed', current: s.staged, staged: undefined})
    await raiseFloor(paths, 'site', '1.0.0')
    const imp = await run([...FERRY, 'device', 'import', delta.path, '--root', root, '--json', '-q'])
    if (!peers || !make) return {delta, build, imp}
    const copy = join(work, 'copy')
    await mkdir(copy, {recursive: true})
    const cp = await run(`cp ${peerDir}/edge-2.vhdx ${peerDir}/data-2.bin ${copy}/ && sync && openssl dgst -sha256 ${copy}/edge-2.vhdx ${copy}/data-2.bin`)
    await rm(copy, {recursive: true, force: true})
    await mkdir(copy, {recursive: true})
    const extract = await run(
      `casync extract --store=${castore} --seed=${www}/edge-1.vhdx ${peerDir}/edge-2.caibx ${copy}/edge-2.vhdx && ` +
        `casync extract --store=${castore} --seed=${www}/data-1.bin ${peerDir}/data-2.caibx ${copy}/data-2.bin && sync`,
    )
    return {delta, build, imp, peers: {make, casyncBytes, cp, extract}}
  } finally {
    await server.close()
  }
}

export async function benchChunkedDelta(work: string): Promise<string[]> {
  const lines: string[] = []
  const changed = 26 * MiB
  const main = await scenario(join(work, '512'), 512, true)
  const {delta, build, imp} = main
  const peer = main.peers!
  const target = (1.2 * changed + MiB) / changed
  lines.push(`delta size / changed bytes (26 MiB)            ferry ${(delta.size / changed).toFixed(2)}x  casync ${(peer.casyncBytes / changed).toFixed(2)}x  (target ≤ 1.2x + 1 MiB = ${target.toFixed(2)}x: ${delta.size / changed <= target ? 'ok' : 'OVER TARGET'})`)
  for (const c of delta.chunked) lines.push(`  ${c.name}: ${c.chunks} chunks, ${c.reused} reused, ${(c.newBytes / MiB).toFixed(1)} MiB new`)
  lines.push(row('delta build vs curl + casync make', build.seconds, peer.make.seconds, 0.8))
  lines.push(row('device import of the delta vs cp+sync+openssl', imp.seconds, peer.cp.seconds, 1.5))
  lines.push(row('  (beside it: casync extract, seeded)', imp.seconds, peer.extract.seconds, undefined, 's', 'no target: casync rebuilding from its store and the old files'))
  await rm(join(work, '512'), {recursive: true, force: true})
  const small = await scenario(join(work, '128'), 128, false)
  lines.push(memRow('delta build, 512 MiB image', build.peakMiB))
  lines.push(memRow('delta build, 128 MiB image', small.build.peakMiB))
  lines.push(memRow('device import of the delta, 512 MiB image', imp.peakMiB))
  lines.push(memRow('device import of the delta, 128 MiB image', small.imp.peakMiB))
  const growth = Math.max(build.peakMiB - small.build.peakMiB, imp.peakMiB - small.imp.peakMiB)
  lines.push(`${'peak RSS growth, 4x the image'.padEnd(44)} ${growth >= 0 ? '+' : ''}${growth.toFixed(0)} MiB  (flat, under 16 MiB: ${growth <= 16 ? 'ok' : 'GROWS'})`)
  return lines
}
