import {Command, Flags, Interfaces} from '@oclif/core'
import {FerryError, toFerryError} from '../errors.js'
import {describeInterruption, handleStopSignals, interruptedError, stopSignal} from '../interrupt.js'
import {ProgressRenderer} from '../ui/progress.js'
import {didYouMean} from '../suggest.js'

/** oclif's parse errors span lines; scripts and people both want one. */
function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ')
    .replace(/\s+/g, ' ')
}

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

/**
 * Owns what every Ferry command shares: the `--json` envelope, exit codes,
 * NO_COLOR and progress drawing. Subclasses implement `run()` and return the
 * result object; human output goes through `this.say()`.
 */
export abstract class BaseCommand extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    quiet: Flags.boolean({char: 'q', description: 'Print no progress, only the result.', helpGroup: 'GLOBAL'}),
  }

  /**
   * Commands that stop cleanly on Ctrl-C / SIGTERM (parking downloads, removing temp files and
   * locks) before they print what was kept; the others end at once, having changed nothing.
   */
  static interruptible = false

  private renderer?: ProgressRenderer

  async init(): Promise<void> {
    await super.init()
    const unwindMs = (this.ctor as typeof BaseCommand).interruptible ? 20_000 : 0
    handleStopSignals({graceMs: unwindMs, report: (err) => this.report(err)})
  }

  /** What the interruption line says was kept and how to go on (see interrupt.ts). */
  protected onInterrupt(describe: () => string): void {
    describeInterruption(describe)
  }

  /** The one line on stderr, or the envelope on stdout with --json. */
  private report(ferry: FerryError): void {
    this.stopProgress()
    if (this.jsonEnabled()) {
      this.logJson(this.toErrorJson(ferry))
    } else {
      process.stderr.write(`ferry: ${ferry.message}\n`)
    }
  }

  /** A progress listener for the core; draws nothing with --quiet. */
  protected progress() {
    if (this.argv.includes('--quiet') || this.argv.includes('-q')) return undefined
    this.renderer ??= new ProgressRenderer()
    return this.renderer.listener
  }

  protected stopProgress(): void {
    this.renderer?.stop()
  }

  /** A line for people; suppressed with --json so stdout stays one JSON object. */
  protected say(line = ''): void {
    this.stopProgress()
    if (!this.jsonEnabled()) this.log(line)
  }

  /** A note for people on stderr (stdout stays the result); shown with --json too, never with --quiet. */
  protected warnLine(line: string): void {
    this.stopProgress()
    if (!(this.argv.includes('--quiet') || this.argv.includes('-q'))) process.stderr.write(`${line}\n`)
  }

  protected toSuccessJson(result: unknown): {status: number; result: unknown} {
    return {status: 0, result}
  }

  protected toErrorJson(err: unknown): {status: number; error: {code: string; message: string}} {
    const e = toFerryError(err)
    return {status: e.exit, error: {code: e.code, message: e.message}}
  }

  /** "Nonexistent flag: --kye" → the same with (did you mean "--key"?), from this command's flags. */
  private withFlagSuggestion(message: string): string {
    const m = /^Nonexistent flags?: (--?[\w-]+)(=\S*)?/.exec(message)
    if (!m) return message
    const flags = {...(this.ctor.flags ?? {}), ...(this.ctor.baseFlags ?? {}), json: {}}
    const hint = didYouMean(m[1].replace(/^-+/, ''), Object.keys(flags), (f) => `"--${f}"`)
    return hint ? message.replace(m[0], `${m[0]}${hint}`) : message
  }

  /**
   * A command whose work stopped with nothing left to wait for (a promise nobody settles: a bug) would end
   * with Node's exit 13 and no output; it ends as an unexpected error (exit 1) with its envelope instead,
   * and the locks it holds are removed at exit (see pid-lock.ts).
   */
  protected async _run<T>(): Promise<T> {
    const stalled = () => {
      const err = new FerryError('unexpected', 'STALLED', `ferry ${(this.id ?? '').replace(/:/g, ' ')} stopped with its work unfinished; nothing it was writing is complete. Run it again; if this repeats, report it with FERRY_DEBUG=1 output`.replace('  ', ' '))
      this.stopProgress()
      if (this.jsonEnabled()) process.stdout.write(`${JSON.stringify(this.toErrorJson(err), null, 2)}\n`)
      else process.stderr.write(`ferry: ${err.message}\n`)
      process.exit(err.exit)
    }
    process.once('beforeExit', stalled)
    try {
      return await super._run<T>()
    } finally {
      process.off('beforeExit', stalled)
    }
  }

  async catch(err: Interfaces.CommandError): Promise<void> {
    this.stopProgress()
    const oclifExit = (err as {oclif?: {exit?: number}}).oclif?.exit
    // oclif's own parse errors (unknown flag, missing arg) are usage errors.
    // Whatever error the stop caused on its way out, the run ends as interrupted.
    const ferry = stopSignal()
      ? err instanceof FerryError && err.code === 'INTERRUPTED'
        ? err
        : interruptedError()
      : err instanceof FerryError
        ? err
        : oclifExit !== undefined && !(err as {code?: string}).code?.startsWith('E')
          ? new FerryError('usage', 'USAGE', this.withFlagSuggestion(oneLine(err.message)))
          : toFerryError(err)
    // A flag's own check (e.g. --proxy) fails inside oclif's parser, which wraps its message in lines.
    const wrapped = /^Parsing --\S+\s*\n\t([^\n]*)/.exec(ferry.message)
    if (wrapped) ferry.message = wrapped[1]
    if (oclifExit === 0) return
    process.exitCode = ferry.exit
    this.report(ferry)
    if (process.env.FERRY_DEBUG && ferry.cause) process.stderr.write(`${(ferry.cause as Error).stack ?? ferry.cause}\n`)
    this.exit(ferry.exit)
  }
}
