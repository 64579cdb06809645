import {delimiter, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import type {HealthCheck} from '../manifest/lock-format.js'
import {interruption, throwIfInterrupted} from '../interrupt.js'
import {runShell} from './shell.js'

/** Where and as whom a release's checks run. */
export interface CheckContext {
  /** the slot folder of the release in trial: commands run there, with its bin/ first on PATH */
  slotDir: string
  env: Record<string, string>
}

export interface CheckOutcome {
  name: string
  ok: boolean
  attempts: number
  /** why the last attempt failed, in a few words */
  reason?: string
  /** tail of the last attempt's output */
  output: string
}

export interface HealthReport {
  ok: boolean
  checks: CheckOutcome[]
  /** the first check that failed; the rest were not run */
  failed?: CheckOutcome
}

export type CheckListener = (event: {check: string; attempt: number; of: number; ok?: boolean; reason?: string}) => void

const HTTP_BODY_TAIL = 4 * 1024

async function attemptCommand(check: HealthCheck & {run: string}, ctx: CheckContext): Promise<{ok: boolean; reason?: string; output: string}> {
  const path = [join(ctx.slotDir, 'bin'), process.env.PATH ?? '/usr/bin:/bin'].join(delimiter)
  const result = await runShell(check.run, {cwd: ctx.slotDir, env: {...ctx.env, PATH: path}, timeoutMs: check.timeout * 1000, signal: interruption})
  if (result.ok) return {ok: true, output: result.output}
  const reason = result.timedOut ? `no answer within ${check.timeout}s` : `exit ${result.exitCode ?? 'by signal'}`
  return {ok: false, reason, output: result.output}
}

/** A GET with a deadline covering the whole answer; a 2xx status passes. Only local endpoints make sense here. */
async function attemptHttp(check: HealthCheck & {http: string}): Promise<{ok: boolean; reason?: string; output: string}> {
  const deadline = AbortSignal.timeout(check.timeout * 1000)
  try {
    const res = await fetch(check.http, {signal: AbortSignal.any([deadline, interruption]), redirect: 'manual'})
    const body = Buffer.from(await res.arrayBuffer())
    const output = body.subarray(Math.max(0, body.length - HTTP_BODY_TAIL)).toString('utf8')
    if (res.status >= 200 && res.status < 300) return {ok: true, output}
    return {ok: false, reason: `HTTP ${res.status}`, output}
  } catch (err) {
    throwIfInterrupted()
    if (deadline.aborted) return {ok: false, reason: `no answer within ${check.timeout}s`, output: ''}
    const cause = (err as {cause?: {code?: string; message?: string}}).cause
    return {ok: false, reason: cause?.code ?? cause?.message ?? (err as Error).message, output: ''}
  }
}

async function runCheck(check: HealthCheck, ctx: CheckContext, onEvent?: CheckListener): Promise<CheckOutcome> {
  const tries = check.retries + 1
  let last: {ok: boolean; reason?: string; output: string} = {ok: false, reason: 'not run', output: ''}
  for (let attempt = 1; attempt <= tries; attempt++) {
    if (attempt > 1 && check.interval > 0) await sleep(check.interval * 1000, undefined, {signal: interruption}).catch(throwIfInterrupted)
    onEvent?.({check: check.name, attempt, of: tries})
    if (check.run !== undefined) last = await attemptCommand({...check, run: check.run}, ctx)
    else if (check.http !== undefined) last = await attemptHttp({...check, http: check.http})
    else last = {ok: false, reason: 'the check has neither "run" nor "http"', output: ''}
    onEvent?.({check: check.name, attempt, of: tries, ok: last.ok, reason: last.reason})
    if (last.ok) return {name: check.name, ok: true, attempts: attempt, output: last.output}
  }
  return {name: check.name, ok: false, attempts: tries, reason: last.reason, output: last.output}
}

/** Runs a release's checks in order; the first one still failing after its retries ends the trial. */
export async function runHealthChecks(checks: HealthCheck[], ctx: CheckContext, onEvent?: CheckListener): Promise<HealthReport> {
  const outcomes: CheckOutcome[] = []
  for (const check of checks) {
    const outcome = await runCheck(check, ctx, onEvent)
    outcomes.push(outcome)
    if (!outcome.ok) return {ok: false, checks: outcomes, failed: outcome}
  }
  return {ok: true, checks: outcomes}
}

/** One line for the journal and the technician: the check, why, and the end of its output. */
export function describeFailure(outcome: CheckOutcome, maxOutput = 2000): string {
  // One line, so the refusal stays one line: output lines are joined with " | ".
  const output = outcome.output.trim().replace(/\s*\n\s*/g, ' | ')
  const tail = output.length > maxOutput ? '…' + output.slice(output.length - maxOutput) : output
  const attempts = outcome.attempts > 1 ? ` after ${outcome.attempts} attempts` : ''
  return `health check "${outcome.name}" failed${attempts} (${outcome.reason ?? 'failed'})${tail ? `: ${tail}` : ''}`
}
