/**
 * Durations as a manifest writes them: a whole number and one unit,
 * s (seconds), m (minutes), h (hours), d (days) or w (weeks), e.g. 90d, 12h, 30m, 60s.
 */
const UNIT_SECONDS = {s: 1, m: 60, h: 3600, d: 86400, w: 604800} as const

const DURATION = /^(\d{1,9})([smhdw])$/

/** Seconds in a duration, or undefined when the text is not one. */
export function tryParseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim())
  if (!m) return undefined
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS]
}

/** Seconds in a duration; throws on anything else (the manifest schema has refused those already). */
export function parseDuration(text: string): number {
  const seconds = tryParseDuration(text)
  if (seconds === undefined) throw new Error(`not a duration: "${text}" (use a number and s, m, h, d or w, e.g. 90d)`)
  return seconds
}

export const DURATION_HINT = 'a duration: a whole number and s, m, h, d or w (e.g. 60s, 30m, 12h, 90d)'
