// The only stand-ins of the device tests: the k3s binary a release carries (its health depends on how the
// test builds it) and the host that activates a slot (restart k3s, swap the VM disk), driven by hook
// commands in device.yaml. Both log what they were asked to do under <root>/stand-in/.
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {ArtifactSpec} from './device.js'

export type K3sMode = 'healthy' | 'unhealthy' | 'hang'

/** A `bin/k3s` stand-in: `k3s kubectl get nodes` answers Ready, NotReady (exit 1), or never (sleeps `hangSeconds`). */
export function k3sStandIn(version: string, mode: K3sMode, hangSeconds = 3000): string {
  const body = {
    healthy: `echo "edge-1   Ready    control-plane   k3s ${version}"`,
    unhealthy: `echo "edge-1   NotReady   k3s ${version}: kubelet stopped posting node status" >&2\nexit 1`,
    hang: `sleep ${hangSeconds}`,
  }[mode]
  return `#!/bin/sh\n# stand-in for k3s ${version} (${mode})\necho "$FERRY_SLOT $FERRY_VERSION $*" >> "$FERRY_ROOT/stand-in/k3s.log"\n${body}\n`
}

/** A tiny release: the k3s stand-in, a kubectl, a site file. */
export function standInArtifacts(version: string, mode: K3sMode, hangSeconds?: number): ArtifactSpec[] {
  return [
    {name: 'k3s/k3s', kind: 'k3s', dest: 'bin/k3s', content: k3sStandIn(version, mode, hangSeconds)},
    {name: 'kubernetes/kubectl', kind: 'kubernetes', dest: 'bin/kubectl', content: `#!/bin/sh\necho "kubectl ${version}"\n`},
    {name: 'files/site.txt', kind: 'file', dest: 'files/site.txt', content: `site config for ${version}\n`},
  ]
}

/** The release's health check: ask the stand-in k3s for the nodes. */
export const nodesReady = (timeout = 10, retries = 0) => ({name: 'nodes-ready', run: 'k3s kubectl get nodes', timeout, retries, interval: 0})

/**
 * device.yaml with hooks that call the host stand-in `<root>/stand-in/host.sh HOOK`: it logs
 * "HOOK SLOT VERSION REASON" and fails when the file <root>/stand-in/fail-HOOK exists.
 */
export async function writeDeviceConfig(root: string, extra = ''): Promise<void> {
  const standIn = join(root, 'stand-in')
  await mkdir(standIn, {recursive: true})
  await writeFile(
    join(standIn, 'host.sh'),
    `#!/bin/sh\necho "$1 $FERRY_SLOT $FERRY_VERSION $FERRY_REASON" >> "$FERRY_ROOT/stand-in/host.log"\nif [ -e "$FERRY_ROOT/stand-in/fail-$1" ]; then echo "host: cannot $1 slot $FERRY_SLOT" >&2; exit 3; fi\n`,
    {mode: 0o755},
  )
  await mkdir(join(root, 'etc', 'ferry'), {recursive: true})
  const hook = (name: string) => `  ${name}: sh "$FERRY_ROOT/stand-in/host.sh" ${name}\n`
  await writeFile(join(root, 'etc', 'ferry', 'device.yaml'), `hooks:\n${hook('pre-switch')}${hook('activate')}${hook('post-switch')}${extra}`)
}

/** Lines the host stand-in logged. */
export async function hostLog(root: string): Promise<string[]> {
  const text = await readFile(join(root, 'stand-in', 'host.log'), 'utf8').catch(() => '')
  return text.split('\n').filter(Boolean)
}
