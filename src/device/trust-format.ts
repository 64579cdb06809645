import {join} from 'node:path'
import {z} from 'zod'
import {writeFileAtomic} from '../store/atomic-file.js'
import {readJsonFile} from '../store/json-file.js'
import type {DevicePaths} from './paths.js'

const Fingerprint = z.string().regex(/^[0-9A-F]{40,64}$/, 'a fingerprint (40 uppercase hex)')

/**
 * <trust>/policy.json: which keys are trusted (their armored files are keys/<FPR>.asc), how many must sign,
 * and which are revoked for good. The list of trusted keys lives here, not in the folder listing, so a
 * key rotation switches the whole set with one atomic rename.
 */
export const TrustPolicy = z.strictObject({
  schema: z.literal('ferry.trust-policy/v1'),
  threshold: z.number().int().positive(),
  keys: z.array(Fingerprint),
  revoked: z.array(Fingerprint),
})
export type TrustPolicy = z.infer<typeof TrustPolicy>

/**
 * <trust>/floor.json: the committed anti-rollback floor of each bundle name; raised only at commit, never
 * lowered. v1 held one floor for the whole device: it is read as the floor of the name the device ran.
 */
export const VersionFloorV1 = z.strictObject({
  schema: z.literal('ferry.floor/v1'),
  version: z.string(),
  raised: z.string(),
})
const FloorEntry = z.strictObject({version: z.string(), raised: z.string()})
export const VersionFloors = z.strictObject({
  schema: z.literal('ferry.floor/v2'),
  floors: z.record(z.string(), FloorEntry),
})
export type VersionFloors = z.infer<typeof VersionFloors>
export const FloorFile = z.discriminatedUnion('schema', [VersionFloorV1, VersionFloors])

/** <trust>/clock.json: the highest time the device has seen, so a clock reset cannot revive an expired bundle. */
export const SeenClock = z.strictObject({
  schema: z.literal('ferry.clock/v1'),
  highest: z.string(),
})
export type SeenClock = z.infer<typeof SeenClock>

/** <trust>/bad.json: releases a rollback marked bad, never retried automatically. */
export const BadReleases = z.strictObject({
  schema: z.literal('ferry.bad-releases/v1'),
  releases: z.array(
    z.strictObject({
      /** sha256 of the release's bundle.json */
      digest: z.string(),
      name: z.string().optional(),
      version: z.string().optional(),
      reason: z.string().optional(),
      at: z.string(),
    }),
  ),
})
export type BadReleases = z.infer<typeof BadReleases>

export const trustFile = {
  keys: (paths: DevicePaths) => join(paths.trust, 'keys'),
  key: (paths: DevicePaths, fingerprint: string) => join(paths.trust, 'keys', `${fingerprint}.asc`),
  policy: (paths: DevicePaths) => join(paths.trust, 'policy.json'),
  floor: (paths: DevicePaths) => join(paths.trust, 'floor.json'),
  clock: (paths: DevicePaths) => join(paths.trust, 'clock.json'),
  bad: (paths: DevicePaths) => join(paths.trust, 'bad.json'),
}

/** Reads and validates one trust-store file; `undefined` when it does not exist yet. */
export async function readTrustFile<T>(file: string, schema: z.ZodType<T>): Promise<T | undefined> {
  return readJsonFile(file, schema, 'TRUST_STORE_CORRUPT', 'restore it or re-provision the trust store')
}

export async function writeTrustFile(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n')
}
