import {z} from 'zod'
import {BundleManifest} from '../bundle/format.js'
import {HealthCheck} from '../manifest/lock-format.js'

/** A release as the device knows it: which slot holds it. */
export const SlotRelease = z.strictObject({
  slot: z.enum(['a', 'b']),
  name: z.string(),
  version: z.string(),
  /** sha256 digest of the release's bundle.json */
  digest: z.string(),
})
export type SlotRelease = z.infer<typeof SlotRelease>

/**
 * The journal's states (DESIGN.md): idle → verifying → staged → switching → trial → committed,
 * and trial|switching → rolling-back → rolled-back.
 */
export const DeviceStateName = z.enum(['idle', 'verifying', 'staged', 'switching', 'trial', 'committed', 'rolling-back', 'rolled-back'])
export type DeviceStateName = z.infer<typeof DeviceStateName>

/** <root>/var/lib/ferry/state.json, written temp + fsync + rename + fsync dir before each side effect. */
export const DeviceState = z.strictObject({
  schema: z.literal('ferry.device-state/v1'),
  state: DeviceStateName,
  /** the release `current` points at (committed, or in trial) */
  current: SlotRelease.optional(),
  /** the release to roll back to */
  previous: SlotRelease.optional(),
  /** imported into the inactive slot, not yet applied */
  staged: SlotRelease.optional(),
  /** the step of apply in flight, for recover (e.g. "images", "binaries", "link", "hooks:activate") */
  step: z.string().optional(),
  /** times a trial was started (recover rolls back after too many) */
  trialAttempts: z.number().int().nonnegative().default(0),
  lastError: z.string().optional(),
  /** while `verifying` (an import in flight): the state to return to if that import is interrupted */
  before: DeviceStateName.optional(),
  /** while `rolling-back`: whether the release being left is to be marked bad (it failed), kept for recover */
  markBad: z.boolean().optional(),
  updated: z.string(),
})
export type DeviceState = z.infer<typeof DeviceState>

/** <slot>/release.json: what a slot holds, written last by import. */
export const SlotManifest = z.strictObject({
  schema: z.literal('ferry.slot/v1'),
  name: z.string(),
  version: z.string(),
  digest: z.string(),
  platforms: z.array(z.string()),
  health: z.array(HealthCheck),
  /** every artifact with its blob digest and where it was installed in the slot */
  artifacts: z.array(
    z.strictObject({
      name: z.string(),
      kind: z.string(),
      digest: z.string(),
      size: z.number(),
      dest: z.string().optional(),
      ref: z.string().optional(),
      /** a chunked artifact's chunk index blob, kept beside it for later deltas */
      chunks: z.string().optional(),
    }),
  ),
  /** container images: reference → manifest digest (for containerd import / k3s) */
  images: z.array(z.strictObject({ref: z.string(), digest: z.string(), mediaType: z.string().optional()})),
  importedAt: z.string(),
  /** the platform the slot was staged for (artifacts of other platforms were left out) */
  platform: z.string().optional(),
  /** a key rotation the release carries: adopt it at commit with adoptRotation() */
  rotation: BundleManifest.shape.rotation,
})
export type SlotManifest = z.infer<typeof SlotManifest>
