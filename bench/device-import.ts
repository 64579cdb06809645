// Import a ~1 GB bundle into a fresh device root (verify + store every blob + stage the slot); the peers,
// same run: `cp` + `sha256sum` of the same bytes, and `cp` + `openssl dgst -sha256`.
import {randomFillSync} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {buildBundle} from '../src/bundle/build.js'
import {devicePaths} from '../src/device/paths.js'
import {hostPlatform} from '../src/device/platform.js'
import {addTrustedKey} from '../src/device/trust-store.js'
import type {LockedArtifact, LockFile} from '../src/manifest/lock-format.js'
import {BlobStore} from '../src/store/blob-store.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {fileSigner} from '../src/trust/sign.js'
import {FERRY, median, memRow, row, run} from './lib.js'

const MiB = 1 << 20

async function randomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path)
  for (let left = bytes; left > 0; left -= 4 * MiB) {
    const piece = randomFillSync(Buffer.alloc(Math.min(left, 4 * MiB)))
    if (!out.write(piece)) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
}

/** A bundle of generated files: a VM image, an airgap archive, binaries; about `totalMiB` in all. */
export async function makeBenchBundle(dir: string, totalMiB: number, priv: string): Promise<string> {
  const store = new BlobStore(join(dir, 'store'))
  await mkdir(join(dir, 'gen'), {recursive: true})
  const parts: Array<[string, 'vm' | 'k3s' | 'kubernetes' | 'file', string, number]> = [
    ['vm/edge.vhdx', 'vm', 'vm/edge.vhdx', Math.round(totalMiB * 0.6)],
    ['k3s/k3s-airgap-images.tar.zst', 'k3s', 'images/k3s-airgap-images.tar.zst', Math.round(totalMiB * 0.3)],
    ['k3s/k3s', 'k3s', 'bin/k3s', Math.round(totalMiB * 0.07)],
    ['kubernetes/kubectl', 'kubernetes', 'bin/kubectl', Math.max(1, Math.round(totalMiB * 0.03))],
  ]
  const artifacts: LockedArtifact[] = []
  for (const [name, kind, dest, mib] of parts) {
    const file = join(dir, 'gen', name.replace(/\//g, '_'))
    await randomFile(file, mib * MiB)
    const got = await store.ingest(createReadStream(file, {highWaterMark: MiB}), {what: name})
    await rm(file)
    artifacts.push({name, kind, url: `http://bench.invalid/${name}`, sha256: got.digest.slice(7), size: got.size, mediaType: 'application/octet-stream', dest, upstream: {verifiedBy: 'sha256'}})
  }
  const created = new Date(Date.now() - 3600_000)
  const lock: LockFile = {
    schema: 'ferry.lock/v1',
    name: 'bench',
    version: '1.0.0',
    resolved: created.toISOString(),
    expires: new Date(created.getTime() + 30 * 86_400_000).toISOString(),
    platforms: [hostPlatform()],
    health: [],
    artifacts,
  }
  const built = await buildBundle(lock, {store, signers: [await fileSigner(priv)], outDir: join(dir, 'out'), now: created})
  await rm(join(dir, 'store'), {recursive: true, force: true})
  return built.path
}

export async function benchDeviceImport(work: string, rounds = 3): Promise<string[]> {
  const lines: string[] = []
  const pair = await writeKeyPair(join(work, 'keys'), 'bench', await generateKeyPair({name: 'bench', date: new Date(Date.now() - 7200_000)}))
  const memory: Record<string, number> = {}
  for (const [label, mib] of [
    ['100 MB', 100],
    ['1 GB', 1000],
  ] as const) {
    const dir = join(work, label.replace(' ', ''))
    try {
      const bundle = await makeBenchBundle(dir, mib, pair.private)
      const ours: number[] = []
      const peerSha: number[] = []
      const peerSsl: number[] = []
      let peak = 0
      for (let r = 0; r < rounds; r++) {
        const root = join(dir, 'device')
        await rm(root, {recursive: true, force: true})
        await addTrustedKey(devicePaths(root), pair.public)
        const got = await run([...FERRY, 'device', 'import', bundle, '--root', root, '--json', '-q'])
        ours.push(got.seconds)
        peak = Math.max(peak, got.peakMiB)
        await rm(root, {recursive: true, force: true})
        const copy = join(dir, 'copy.tar')
        peerSha.push((await run(`cp ${bundle} ${copy} && sha256sum ${copy} >/dev/null`)).seconds)
        await rm(copy, {force: true})
        peerSsl.push((await run(`cp ${bundle} ${copy} && openssl dgst -sha256 ${copy} >/dev/null`)).seconds)
        await rm(copy, {force: true})
      }
      // the target is for ~1 GB; the small run is there for the memory curve
      const timed = label === '1 GB'
      lines.push(`-- device import, ${label} (${rounds} rounds, medians) --`)
      lines.push(row(`import vs cp + sha256sum`, median(ours), median(peerSha), timed ? 1.25 : undefined))
      lines.push(row(`import vs cp + openssl dgst -sha256`, median(ours), median(peerSsl), timed ? 1.25 : undefined))
      lines.push(memRow(`import peak RSS`, peak))
      memory[label] = peak
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  }
  lines.push(`peak RSS 100 MB → 1 GB: ${memory['100 MB'].toFixed(0)} → ${memory['1 GB'].toFixed(0)} MiB (×${(memory['1 GB'] / memory['100 MB']).toFixed(2)}; flat means ≈1)`)
  return lines
}
