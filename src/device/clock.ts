import {usageError} from '../errors.js'
import type {DevicePaths} from './paths.js'
import {readTrustFile, SeenClock, trustFile, writeTrustFile} from './trust-format.js'

/**
 * The system clock, or `FERRY_NOW` (an ISO 8601 time) when set. FERRY_NOW exists for tests that need a device
 * whose clock was set back or forward; it is not meant for production use.
 */
export function systemNow(env: NodeJS.ProcessEnv = process.env): Date {
  const override = env.FERRY_NOW
  if (!override) return new Date()
  const t = Date.parse(override)
  if (Number.isNaN(t)) throw usageError('BAD_FERRY_NOW', `FERRY_NOW="${override}" is not an ISO 8601 time; set it like 2026-11-05T14:30:00Z, or unset it`)
  return new Date(t)
}

/** The highest time this device has seen (recorded after each successful import), or undefined. */
export async function seenTime(paths: DevicePaths): Promise<Date | undefined> {
  const clock = await readTrustFile(trustFile.clock(paths), SeenClock)
  return clock ? new Date(clock.highest) : undefined
}

/** Records `now` as seen when it is later than what was recorded; a clock that went back changes nothing. */
export async function recordTime(paths: DevicePaths, now: Date): Promise<void> {
  const seen = await seenTime(paths)
  if (seen && seen >= now) return
  await writeTrustFile(trustFile.clock(paths), {schema: 'ferry.clock/v1', highest: now.toISOString()} satisfies SeenClock)
}

/** The device's notion of now: max(system clock, highest time seen), so a clock reset cannot revive an expired bundle. */
export async function deviceNow(paths: DevicePaths, env: NodeJS.ProcessEnv = process.env): Promise<Date> {
  const system = systemNow(env)
  const seen = await seenTime(paths)
  return seen && seen > system ? seen : system
}
