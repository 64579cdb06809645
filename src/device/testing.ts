/**
 * TEST-ONLY fault injection for the crash-safety tests of apply, rollback and recover.
 *
 * `FERRY_TEST_KILL_AT=<point>` makes the process SIGKILL itself when it reaches that point, exactly
 * as a power cut would stop it. Points are named after the journal: `<state>:<step>` is reached right
 * after the journal recorded that step and before its side effect, `<state>:<step>:done` right after
 * the side effect. Several points may be given, separated by commas. Unset (every real run), this
 * does nothing.
 */
export function checkpoint(point: string): void {
  const wanted = process.env.FERRY_TEST_KILL_AT
  if (!wanted) return
  if (wanted.split(',').some((p) => p.trim() === point)) process.kill(process.pid, 'SIGKILL')
}
