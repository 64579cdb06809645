import type {Ora} from 'ora'
import {formatBytes, formatDuration} from '../format.js'

import type {ProgressEvent, ProgressListener} from '../progress.js'

export type {ProgressEvent, ProgressListener}


interface RendererOptions {
  stream?: NodeJS.WriteStream
  tty?: boolean
  /** seconds between plain lines when not on a terminal */
  interval?: number
}

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
  private phase = ''
  private phaseStart = 0
  private lastLine = 0
  private last?: ProgressEvent

  constructor(options: RendererOptions = {}) {
    this.stream = options.stream ?? process.stderr
    this.tty = options.tty ?? Boolean(this.stream.isTTY && (this.stream.columns ?? 0) > 0)
    // FERRY_PROGRESS_INTERVAL (seconds) sets how often plain progress lines are printed off a terminal.
    this.intervalMs = (options.interval ?? (Number(process.env.FERRY_PROGRESS_INTERVAL) || 5)) * 1000
    if (this.tty) {
      import('ora').then(
        (m) => (this.ora = m.default),
        () => (this.tty = false),
      )
    }
  }

  readonly listener: ProgressListener = (event) => this.update(event)

  update(event: ProgressEvent): void {
    const now = Date.now()
    if (event.phase !== this.phase) {
      this.flushPhase()
      this.phase = event.phase
      this.phaseStart = now
      this.lastLine = now
    }
    this.last = event
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
    const line = this.describe(this.last, Date.now())
    if (this.spinner) {
      this.spinner.stopAndPersist({symbol: process.env.NO_COLOR ? '-' : '✔', text: line})
      this.spinner = undefined
    }
    this.last = undefined
  }

  private describe(e: ProgressEvent, now: number): string {
    const seconds = Math.max((now - this.phaseStart) / 1000, 0.001)
    const rate = e.done / seconds
    let text = `${e.phase}${e.item ? ` ${e.item}` : ''}: ${formatBytes(e.done)}`
    if (e.total !== undefined) text += ` / ${formatBytes(e.total)}`
    text += `, ${formatBytes(rate)}/s`
    if (e.total !== undefined && rate > 0 && e.done < e.total) text += `, ETA ${formatDuration((e.total - e.done) / rate)}`
    return text
  }
}
