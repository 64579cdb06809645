import {readFile} from 'node:fs/promises'
import {parse} from 'yaml'
import {z} from 'zod'
import {usageError} from '../errors.js'
import {underRootPath, type DevicePaths} from './paths.js'

const HookCommand = z.string().min(1)

/**
 * <root>/etc/ferry/device.yaml: what differs from one device to the next. Every field is optional;
 * a missing file means no hooks, no image runtime, three trial attempts.
 */
export const DeviceConfig = z.strictObject({
  /** shell commands run around the switch; on a real host they restart k3s or swap the VM disk */
  hooks: z
    .strictObject({
      'pre-switch': HookCommand.optional(),
      activate: HookCommand.optional(),
      'post-switch': HookCommand.optional(),
      /** seconds a hook may run before it is killed and counted as failed */
      timeout: z.number().positive().default(300),
    })
    .default({timeout: 300}),
  /** images go into containerd through `ctr` */
  containerd: z
    .strictObject({
      /** the containerd socket; `--containerd-address` and $CONTAINERD_ADDRESS win over it */
      address: z.string().min(1).optional(),
      namespace: z.string().min(1).default('k8s.io'),
      /** the ctr binary */
      ctr: z.string().min(1).default('ctr'),
    })
    .optional(),
  /** images go into K3s's airgap folder, which K3s imports when it starts */
  k3s: z
    .strictObject({
      /** read under --root, e.g. /var/lib/rancher/k3s/agent/images */
      imagesDir: z.string().min(1),
    })
    .optional(),
  /** e.g. linux/amd64; bundles built for other platforms are refused at import */
  platform: z.string().optional(),
  trial: z
    .strictObject({
      /** a trial interrupted (power cut, kill) more often than this rolls back at recover */
      maxAttempts: z.number().int().positive().default(3),
    })
    .default({maxAttempts: 3}),
})
export type DeviceConfig = z.infer<typeof DeviceConfig>

export type HookName = 'pre-switch' | 'activate' | 'post-switch'

/** Reads device.yaml; a missing file is the default configuration, a broken one a usage error (exit 2). */
export async function readDeviceConfig(paths: DevicePaths): Promise<DeviceConfig> {
  let text: string
  try {
    text = await readFile(paths.config, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return DeviceConfig.parse({})
    throw err
  }
  let raw: unknown
  try {
    raw = parse(text) ?? {}
  } catch (err) {
    throw usageError('DEVICE_CONFIG_YAML', `${paths.config}: ${(err as Error).message.split('\n')[0]}`)
  }
  const parsed = DeviceConfig.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw usageError('DEVICE_CONFIG_INVALID', `${paths.config}: ${issue.path.join('.') || '(top)'}: ${issue.message}`)
  }
  return parsed.data
}

/** A path named in device.yaml lives under --root, so a test sandbox and a device read the same file. */
export function underRoot(paths: DevicePaths, path: string): string {
  return underRootPath(paths.root, path)
}

/**
 * Where containerd is reached: the command-line flag, else $CONTAINERD_ADDRESS (ctr's own convention),
 * else device.yaml. Undefined when images are not imported into containerd at all.
 */
export function containerdAddress(config: DeviceConfig, flag?: string): string | undefined {
  return flag ?? process.env.CONTAINERD_ADDRESS ?? config.containerd?.address
}
