/** Human-readable sizes and rates, powers of 1024 as DESIGN.md's sizes. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?'
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}

/** Parse "512", "64K", "64KiB", "4M", "1G", "1GiB" (K/M/G are powers of 1024). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text)
  if (!m) throw new Error(`not a size: "${text}" (use bytes or K/M/G, e.g. 512M)`)
  const pow = {'': 0, K: 1, M: 2, G: 3, T: 4}[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T']
  return Math.floor(Number(m[1]) * 1024 ** pow)
}
