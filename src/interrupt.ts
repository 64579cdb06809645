import {FerryError} from './errors.js'

/**
 * Ctrl-C (SIGINT) and SIGTERM. A long command (build, import, apply, USB write, release run) stops
 * the way it stops on a failed download: the signal aborts network requests and child processes,
 * loops stop at their next step, and every `finally` runs (partial downloads parked, temp files
 * removed, locks released). Then the command prints one line saying what was kept and how to go on,
 * and exits 130 or 143 (the shell's 128 + signal number) with the code INTERRUPTED.
 * A second signal, or an unwind that takes too long, ends the process at once: the cleanups
 * registered here (lock files) run synchronously first.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM'

const EXIT: Record<StopSignal, number> = {SIGINT: 130, SIGTERM: 143}

const controller = new AbortController()
let received: StopSignal | undefined
const cleanups = new Set<() => void>()
let describeStop: () => string = () => 'nothing was changed; run the same command again'
let announce: ((err: FerryError) => void) | undefined

/** Aborted when a stop signal arrives: give it to requests and child processes. */
export const interruption: AbortSignal = controller.signal

/** The signal that arrived, if one did. */
export const stopSignal = (): StopSignal | undefined => received

/** The error an interrupted command ends with: exit 130 (SIGINT) or 143 (SIGTERM). */
export function interruptedError(message?: string): FerryError {
  const signal = received ?? 'SIGINT'
  return new FerryError('usage', 'INTERRUPTED', `interrupted (${signal}): ${message ?? describeStop()}`, {exit: EXIT[signal]})
}

/** Throws INTERRUPTED once a stop signal has arrived; loops call it between steps. */
export function throwIfInterrupted(): void {
  if (received) throw interruptedError()
}

/** What the one line says was kept and how to go on, read when the signal arrives (commands set it once they know). */
export function describeInterruption(describe: () => string): void {
  describeStop = describe
}

/** A synchronous last-resort cleanup (remove a lock file) for when the process must end at once; returns its remover. */
export function onForcedExit(cleanup: () => void): () => void {
  cleanups.add(cleanup)
  return () => cleanups.delete(cleanup)
}

function forceExit(): never {
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup()
    } catch {
      // best effort: the process is ending
    }
  }
  const err = interruptedError()
  announce?.(err)
  process.exit(err.exit)
}

/**
 * Installs the handlers. `graceMs`: how long the command may take to unwind after the first signal
 * (0: it has nothing worth unwinding, end at once). `report` prints the line or the JSON envelope.
 */
export function handleStopSignals(options: {graceMs: number; report: (err: FerryError) => void}): void {
  announce = options.report
  const onSignal = (signal: StopSignal) => {
    if (received) forceExit()
    received = signal
    if (options.graceMs <= 0) forceExit()
    controller.abort(interruptedError())
    setTimeout(forceExit, options.graceMs).unref()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}
