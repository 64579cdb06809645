// Build a bundle of 9 images (~1 GB: 8 images sharing a 20 MB base + 3 × 40 MB layers each, and a
// multi-arch index) from a loopback docker-registry; the peer, same run: `skopeo copy` of the same 9
// images into one OCI layout. Also rebuilds with a warm store: the same lock and signer (the store
// keeps that very bundle as a pack and links it), and another signer (every blob copied from the store);
// then the cold build again from a TLS registry.
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {generateKeyPair, writeKeyPair} from '../src/trust/keys.js'
import {makeImages, skopeo, startRegistry} from '../test/helpers/registry.js'
import {FERRY, median, memRow, row, run} from './lib.js'

export async function benchImages(work: string, rounds = 3): Promise<string[]> {
  await mkdir(work, {recursive: true})
  const layout = join(work, 'layout')
  makeImages(layout, 8, 3, 40, 20)
  const registry = await startRegistry(join(work, 'registry'))
  // The same images behind TLS (a CA made by openssl), as most sites' registries are.
  const secure = await startRegistry(join(work, 'secure'), {tls: true})
  const lines: string[] = []
  try {
    const h = registry.host
    const names = [...Array.from({length: 8}, (_, i) => `img${i}`), 'multi']
    const refs = names.map((n) => `${h}/bench/${n}:v1`)
    const secureRefs = names.map((n) => `${secure.host}/bench/${n}:v1`)
    for (const [i, name] of names.entries()) {
      for (const ref of [refs[i], secureRefs[i]]) {
        await skopeo(['copy', '-q', ...(name === 'multi' ? ['--all'] : []), '--dest-tls-verify=false', `oci:${layout}:${name}`, `docker://${ref}`])
      }
    }
    await rm(layout, {recursive: true, force: true})
    const manifest = join(work, 'images.yaml')
    await writeFile(manifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: bench-images, version: 1.0.0}\nspec:\n  platforms: [linux/amd64]\n  images:\n${refs.map((r) => `    - ${r}`).join('\n')}\n`)
    const lock = join(work, 'images.lock.json')
    await run([...FERRY, 'manifest', 'lock', manifest, '--out', lock, '-q'])
    const pair = await writeKeyPair(join(work, 'keys'), 'bench', await generateKeyPair({name: 'bench', date: new Date(Date.now() - 3600_000)}))
    const second = await writeKeyPair(join(work, 'keys'), 'second', await generateKeyPair({name: 'second', date: new Date(Date.now() - 3600_000)}))
    const cold: number[] = []
    const warm: number[] = []
    const copied: number[] = []
    const peer: number[] = []
    let peak = 0
    const store = join(work, 'store')
    const out = join(work, 'out')
    const peerDir = join(work, 'peer')
    const skopeoAll = refs.map((r, i) => `skopeo copy -q ${i === 8 ? '--all ' : ''}--src-tls-verify=false docker://${r} oci:${peerDir}:n${i}`).join(' && ')
    for (let r = 0; r < rounds; r++) {
      await rm(store, {recursive: true, force: true})
      await rm(out, {recursive: true, force: true})
      const b = await run([...FERRY, 'bundle', 'build', lock, '--key', pair.private, '--out', out, '--store', store, '--json', '-q'])
      cold.push(b.seconds)
      peak = Math.max(peak, b.peakMiB)
      await rm(out, {recursive: true, force: true})
      const w = await run([...FERRY, 'bundle', 'build', lock, '--key', pair.private, '--out', out, '--store', store, '--json', '-q'])
      warm.push(w.seconds)
      peak = Math.max(peak, w.peakMiB)
      // Signed by another key: not the bundle the store keeps, so every blob is copied out of the store.
      await rm(out, {recursive: true, force: true})
      const c = await run([...FERRY, 'bundle', 'build', lock, '--key', second.private, '--out', out, '--store', store, '--json', '-q'])
      copied.push(c.seconds)
      peak = Math.max(peak, c.peakMiB)
      await rm(peerDir, {recursive: true, force: true})
      peer.push((await run(skopeoAll)).seconds)
    }
    lines.push(`-- images from a registry, 9 images ~1 GB (${rounds} rounds, medians) --`)
    lines.push(row('bundle build vs skopeo copy (9 images)', median(cold), median(peer), 1.1))
    lines.push(row('rebuild, warm store (out removed) vs first build', median(warm), median(cold), 0.2))
    lines.push(row('  same, another signer (blobs copied) vs first', median(copied), median(cold), undefined, 's', 'no target: every blob copied out of the store, shown for what it costs'))
    lines.push(memRow('bundle build peak RSS', peak))

    // Over TLS: Ferry checks the registry's certificate (--ca-file); skopeo is told not to, which spares it that work.
    const secureManifest = join(work, 'secure.yaml')
    await writeFile(secureManifest, `apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: bench-tls, version: 1.0.0}\nspec:\n  platforms: [linux/amd64]\n  images:\n${secureRefs.map((r) => `    - ${r}`).join('\n')}\n`)
    const secureLock = join(work, 'secure.lock.json')
    const ca = ['--ca-file', secure.caFile!]
    await run([...FERRY, 'manifest', 'lock', secureManifest, '--out', secureLock, '-q', ...ca])
    const tlsCold: number[] = []
    const tlsPeer: number[] = []
    let tlsPeak = 0
    const skopeoSecure = secureRefs.map((r, i) => `skopeo copy -q ${i === 8 ? '--all ' : ''}--src-tls-verify=false docker://${r} oci:${peerDir}:n${i}`).join(' && ')
    for (let r = 0; r < rounds; r++) {
      await rm(store, {recursive: true, force: true})
      await rm(out, {recursive: true, force: true})
      const b = await run([...FERRY, 'bundle', 'build', secureLock, '--key', pair.private, '--out', out, '--store', store, '--json', '-q', ...ca])
      tlsCold.push(b.seconds)
      tlsPeak = Math.max(tlsPeak, b.peakMiB)
      await rm(peerDir, {recursive: true, force: true})
      tlsPeer.push((await run(skopeoSecure)).seconds)
    }
    lines.push(`-- the same over TLS (${rounds} rounds, medians) --`)
    lines.push(row('bundle build vs skopeo copy, TLS', median(tlsCold), median(tlsPeer), 1.1))
    lines.push(memRow('bundle build peak RSS, TLS', tlsPeak))
  } finally {
    await secure.stop()
    await registry.stop()
    await rm(work, {recursive: true, force: true})
  }
  return lines
}
