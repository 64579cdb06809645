import {readFile, rm} from 'node:fs/promises'
import {join, relative} from 'node:path'
import type {Changes} from '../release/changelog.js'
import {runRelease} from '../release/run.js'
import type {BlobStore} from '../store/blob-store.js'
import {fileSigner} from '../trust/sign.js'
import {formatBytes} from '../format.js'
import type {ProgressListener} from '../ui/progress.js'
import {rebuildDemoImage} from './steps-images.js'
import {publishK3s} from './upstream.js'

/** The k3s release the demo's `stable` channel moves to in the second month. */
export const DEMO_K3S_NEXT = 'v1.30.5+k3s1'

export interface DemoReleaseInput {
  /** the demo's upstream folder, served by the demo's file server */
  upstreamDir: string
  imagesDir: string
  /** moves the channel server's `stable` channel to a k3s release */
  moveChannel: (version: string) => void
  manifest: string
  privateKey: string
  store: BlobStore
  /** the release folder is <work>/releases, made afresh */
  work: string
  say: (line: string) => void
  onProgress?: ProgressListener
}

export interface DemoReleaseResult {
  dir: string
  versions: string[]
  delta: {path: string; size: number}
  full: number
  changelog: string
  changes: Changes
}

const rel = (path: string) => relative(process.cwd(), path) || '.'

/**
 * The monthly release job over two months: the first run makes the first release; then upstream moves
 * (a new k3s on the stable channel, a rebuilt image) and the next run makes the full bundle, the delta
 * from last month's release and the changelog.
 */
export async function demoReleaseSteps(input: DemoReleaseInput): Promise<DemoReleaseResult> {
  const {say} = input
  const dir = join(input.work, 'releases')
  await rm(dir, {recursive: true, force: true})
  const common = {manifest: input.manifest, dir, signers: [await fileSigner(input.privateKey)], store: input.store, onProgress: input.onProgress}
  const first = await runRelease(common)
  say(`14. monthly job, month 1: ferry release run ${rel(input.manifest)} --out ${rel(dir)} → ${first.version} (k3s from the stable channel)`)
  const again = await runRelease(common)
  say(`    run again at once: changed ${again.changed}, nothing written (upstream did not move)`)

  await publishK3s(input.upstreamDir, DEMO_K3S_NEXT)
  input.moveChannel(DEMO_K3S_NEXT)
  const image = await rebuildDemoImage(input.imagesDir, 'demo.example.com/site/api:1.0')
  say(`15. a month later upstream moved: the stable channel now redirects to ${DEMO_K3S_NEXT}, and ${image} was rebuilt`)
  const second = await runRelease(common)
  const delta = second.deltas[0]
  say(`    month 2: ${second.version}: full bundle ${formatBytes(second.bundle.size)}, delta from ${first.version} ${formatBytes(delta.size)} (${rel(delta.path)})`)
  const changes = JSON.parse(await readFile(second.changelog.json, 'utf8')) as Changes
  for (const c of changes.artifacts) {
    const from = c.old?.version ?? c.old?.digest.slice(0, 19)
    const to = c.new?.version ?? c.new?.digest.slice(0, 19)
    say(`      ${c.change} ${c.name}: ${from} → ${to}`)
  }
  say(`    changelog: ${rel(second.changelog.md)}; ferry release list ${rel(dir)}`)
  return {dir, versions: [first.version, second.version], delta, full: second.bundle.size, changelog: second.changelog.md, changes}
}
