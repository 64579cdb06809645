// Build a bundle of ~1 GB of files from a loopback HTTP server, then verify it; the peers, same run:
// `curl -o` + `sha256sum` (and `openssl dgst -sha256`) of the same bytes. At 1 GB, also the same
// build through a proxy (tinyproxy on loopback) against the build direct, and curl through that
// proxy against curl direct: what the proxy itself costs.
import {createHash, randomFillSync} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {startFileServer} from '../src/demo/file-server.js'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {startTinyproxy} from '../test/helpers/tinyproxy.js'
import {FERRY, median, memRow, row, run} from './lib.js'

const MiB = 1 << 20

async function randomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  const chunk = Buffer.alloc(4 * MiB)
  for (let left = bytes; left > 0; left -= chunk.length) {
    const piece = chunk.subarray(0, Math.min(left, chunk.length))
    randomFillSync(piece)
    hash.update(piece)
    if (!out.write(piece)) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
  return hash.digest('hex')
}

async function fixture(dir: string, files: number, eachMiB: number, url: string): Promise<{manifest: string; names: string[]}> {
  await mkdir(join(dir, 'www'), {recursive: true})
  const entries: string[] = []
  const names: string[] = []
  for (let i = 0; i < files; i++) {
    const name = `payload-${i}.bin`
    const sum = await randomFile(join(dir, 'www', name), eachMiB * MiB)
    entries.push(`    - {url: ${url}/${name}, sha256: ${sum}}`)
    names.push(name)
  }
  const manifest = join(dir, 'bench.yaml')
  await writeFile(manifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: bench, version: 1.0.0}\nspec:\n  files:\n${entries.join('\n')}\n`)
  return {manifest, names}
}

export async function benchBuildHttp(work: string, rounds = 3): Promise<string[]> {
  const lines: string[] = []
  const keys = join(work, 'keys')
  const pair = await writeKeyPair(keys, 'bench', await generateKeyPair({name: 'bench', date: new Date(Date.now() - 3600_000)}))
  const memory: Record<string, number> = {}
  for (const [label, files, each] of [
    ['100 MB', 4, 25],
    ['1 GB', 4, 256],
  ] as const) {
    const dir = join(work, label.replace(' ', ''))
    await mkdir(join(dir, 'www'), {recursive: true})
    const server = await startFileServer({root: join(dir, 'www')})
    try {
      const {manifest, names} = await fixture(dir, files, each, server.url)
      const lock = join(dir, 'bench.lock.json')
      await run([...FERRY, 'manifest', 'lock', manifest, '--out', lock, '--store', join(dir, 'lockstore'), '-q'])
      const build: number[] = []
      const verify: number[] = []
      const peerFetch: number[] = []
      const peerSha: number[] = []
      const peerSsl: number[] = []
      const peerVerify: number[] = []
      const peerVerifySsl: number[] = []
      const proxied: number[] = []
      const peerProxied: number[] = []
      let buildPeak = 0
      let verifyPeak = 0
      // the targets are for ~1 GB; the small run is there for the memory curve
      const timed = label === '1 GB'
      const proxy = timed ? await startTinyproxy(dir) : undefined
      for (let r = 0; r < rounds; r++) {
        const store = join(dir, 'store')
        const out = join(dir, 'out')
        await rm(store, {recursive: true, force: true})
        await rm(out, {recursive: true, force: true})
        const b = await run([...FERRY, 'bundle', 'build', lock, '--key', pair.private, '--out', out, '--store', store, '--json', '-q'])
        build.push(b.seconds)
        buildPeak = Math.max(buildPeak, b.peakMiB)
        const bundle = JSON.parse(b.stdout).result.path as string
        if (proxy) {
          await rm(store, {recursive: true, force: true})
          const via = join(dir, 'via-proxy')
          await rm(via, {recursive: true, force: true})
          const p = await run([...FERRY, 'bundle', 'build', lock, '--key', pair.private, '--out', via, '--store', store, '--proxy', proxy.url, '--json', '-q'])
          proxied.push(p.seconds)
          buildPeak = Math.max(buildPeak, p.peakMiB)
          await rm(via, {recursive: true, force: true})
        }
        const v = await run([...FERRY, 'bundle', 'verify', bundle, '--key', pair.public, '--json', '-q'])
        verify.push(v.seconds)
        verifyPeak = Math.max(verifyPeak, v.peakMiB)

        const peerDir = join(dir, 'peer')
        await rm(peerDir, {recursive: true, force: true})
        await mkdir(peerDir)
        const urls = names.map((n) => `-o ${join(peerDir, n)} ${server.url}/${n}`).join(' ')
        const fetch = await run(`curl -sS --fail ${urls}`)
        peerFetch.push(fetch.seconds)
        if (proxy) {
          await rm(peerDir, {recursive: true, force: true})
          await mkdir(peerDir)
          peerProxied.push((await run(`curl -sS --fail -x ${proxy.url} ${urls}`)).seconds)
        }
        peerSha.push((await run(`sha256sum ${names.map((n) => join(peerDir, n)).join(' ')}`)).seconds)
        peerSsl.push((await run(`openssl dgst -sha256 ${names.map((n) => join(peerDir, n)).join(' ')}`)).seconds)
        peerVerify.push((await run(['sha256sum', bundle])).seconds)
        peerVerifySsl.push((await run(['openssl', 'dgst', '-sha256', bundle])).seconds)
      }
      await proxy?.stop()
      const curlSha = median(peerFetch) + median(peerSha)
      const curlSsl = median(peerFetch) + median(peerSsl)
      lines.push(`-- HTTP files, ${label} (${rounds} rounds, medians) --`)
      lines.push(row(`build vs curl -o + sha256sum`, median(build), curlSha, timed ? 1.3 : undefined))
      lines.push(row(`build vs curl -o + openssl dgst`, median(build), curlSsl, timed ? 1.3 : undefined))
      lines.push(row(`verify vs sha256sum`, median(verify), median(peerVerify), timed ? 1.15 : undefined))
      lines.push(row(`verify vs openssl dgst -sha256`, median(verify), median(peerVerifySsl), timed ? 1.15 : undefined))
      if (proxied.length) {
        const note = 'no target: reported against the same build direct'
        lines.push(row(`build through tinyproxy vs build direct`, median(proxied), median(build), undefined, 's', note))
        lines.push(row(`  curl through tinyproxy vs curl direct`, median(peerProxied), median(peerFetch), undefined, 's', 'the proxy\'s own cost, for comparison'))
      }
      lines.push(memRow(`build peak RSS`, buildPeak))
      lines.push(memRow(`verify peak RSS`, verifyPeak))
      memory[label] = Math.max(buildPeak, verifyPeak)
    } finally {
      await server.close()
      await rm(dir, {recursive: true, force: true})
    }
  }
  const growth = memory['1 GB'] / memory['100 MB']
  lines.push(`peak RSS 100 MB → 1 GB: ${memory['100 MB'].toFixed(0)} → ${memory['1 GB'].toFixed(0)} MiB (×${growth.toFixed(2)}; flat means ≈1)`)
  return lines
}
