import {join} from 'node:path'

/** Where everything of Ferry lives on a device, under `--root` (default `/`). */
export interface DevicePaths {
  root: string
  /** <root>/var/lib/ferry */
  base: string
  /** journal: state.json */
  state: string
  /** apply lock (O_EXCL + pid) */
  lock: string
  /** trust store: keys/, policy.json, floor, highest time seen, bad releases */
  trust: string
  /** shared blob store: blobs/sha256/<hex> */
  blobs: string
  /** slots/a, slots/b */
  slots: string
  /** symlink current -> slots/<x>, switched by atomic rename */
  current: string
  /** staging area for imports in progress */
  tmp: string
  /** <root>/etc/ferry/device.yaml: hooks, containerd address, k3s images folder */
  config: string
}

export type SlotName = 'a' | 'b'

/**
 * A path under the device root, with the root kept as the user wrote it (`./dev/` stays
 * `./dev/var/lib/ferry`, not `dev/var/lib/ferry`), so messages name the folder they were given.
 */
export function underRootPath(root: string, ...parts: string[]): string {
  const rest = join(...parts).replace(/^\/+/, '')
  return root.endsWith('/') ? `${root}${rest}` : `${root}/${rest}`
}

export function devicePaths(root = '/'): DevicePaths {
  const base = underRootPath(root, 'var', 'lib', 'ferry')
  return {
    root,
    base,
    state: join(base, 'state.json'),
    lock: join(base, 'lock'),
    trust: join(base, 'trust'),
    blobs: join(base, 'blobs'),
    slots: join(base, 'slots'),
    current: join(base, 'current'),
    tmp: join(base, 'tmp'),
    config: underRootPath(root, 'etc', 'ferry', 'device.yaml'),
  }
}

export function slotDir(paths: DevicePaths, slot: SlotName): string {
  return join(paths.slots, slot)
}

export function otherSlot(slot: SlotName): SlotName {
  return slot === 'a' ? 'b' : 'a'
}
