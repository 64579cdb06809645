import type {Ora} from 'ora'
import {formatBytes, formatDuration} from '../format.js'

import type {ProgressEvent, ProgressListener} from '../progress.js'

export type {ProgressEvent, ProgressListener}


interface RendererOptions {
  stream?: NodeJS.WriteStream
  tty?: boolean
  /** seconds between plain lines when not on a terminal */
  interval?: number
  /** milliseconds, for tests; default Date.now */
  clock?: () => number
}

/** A rate needs this long a measurement: a phase over in a few ms has no rate worth printing. */
const MIN_RATE_MS = 200

/**
 * Draws progress: a spinner with bytes, rate and ETA on a terminal; plain
 * periodic lines ("fetch: 120 MiB / 1.0 GiB, 80 MiB/s, ETA 11s") otherwise.
 */
export class ProgressRenderer {
  private readonly stream: NodeJS.WriteStream
  private tty: boolean
  private readonly intervalMs: number
  private spinner?: Ora
  /** the spinner library, loaded only when drawing on a terminal (it is heavy, and off a terminal unused) */
  private ora?: typeof import('ora').default
  private readonly clock: () => number
  private phase = ''
  private lastLine = 0
  private last?: ProgressEvent
  private lastAt = 0
  /**
   * the phase's first event: the rate counts bytes from here, since what it already reported as
   * done (blobs placed by an earlier phase, a resumed download) was not done at this rate
   */
  private base = {at: 0, done: 0}

  constructor(options: RendererOptions = {}) {
    this.stream = options.stream ?? process.stderr
    this.tty = options.tty ?? Boolean(this.stream.isTTY && (this.stream.columns ?? 0) > 0)
    // FERRY_PROGRESS_INTERVAL (seconds) sets how often plain progress lines are printed off a terminal.
    this.intervalMs = (options.interval ?? (Number(process.env.FERRY_PROGRESS_INTERVAL) || 5)) * 1000
    this.clock = options.clock ?? Date.now
    if (this.tty) {
      import('ora').then(
        (m) => (this.ora = m.default),
        () => (this.tty = false),
      )
    }
  }

  readonly listener: ProgressListener = (event) => this.update(event)

  update(event: ProgressEvent): void {
    const now = this.clock()
    if (event.phase !== this.phase) {
      this.flushPhase()
      this.phase = event.phase
      this.base = {at: now, done: event.done}
      this.lastLine = now
    }
    this.last = event
    this.lastAt = now
    if (this.tty) {
      if (!this.ora) return
      this.spinner ??= this.ora({stream: this.stream, discardStdin: false, color: process.env.NO_COLOR ? false : 'cyan'}).start()
      this.spinner.text = this.describe(event, now)
    } else if (now - this.lastLine >= this.intervalMs) {
      this.lastLine = now
      this.stream.write(this.describe(event, now) + '\n')
    }
  }

  /** Ends the current phase, leaving one summary line. */
  stop(): void {
    this.flushPhase()
    this.phase = ''
  }

  private flushPhase(): void {
    if (!this.last || !this.phase) return
    // the phase ended with its last event, not when the next thing was printed
    const line = this.describe(this.last, this.lastAt)
    if (this.spinner) {
      this.spinner.stopAndPersist({symbol: process.env.NO_COLOR ? '-' : '✔', text: line})
      this.spinner = undefined
    }
    this.last = undefined
  }

  private describe(e: ProgressEvent, now: number): string {
    let text = `${e.phase}${e.item ? ` ${e.item}` : ''}: `
    if (e.unit) return `${text}${e.done}${e.total === undefined ? '' : ` / ${e.total}`} ${e.unit}`
    text += formatBytes(e.done)
    if (e.total !== undefined) text += ` / ${formatBytes(e.total)}`
    const ms = now - this.base.at
    const moved = e.done - this.base.done
    if (ms < MIN_RATE_MS || moved <= 0) return text
    const rate = moved / (ms / 1000)
    text += `, ${formatBytes(Math.round(rate))}/s`
    if (e.total !== undefined && e.done < e.total) text += `, ETA ${formatDuration((e.total - e.done) / rate)}`
    return text
  }
}
