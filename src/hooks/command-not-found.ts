import type {Hook} from '@oclif/core'
import {closest} from '../suggest.js'
import {ExitCode} from '../errors.js'

/**
 * An unknown command is a usage error like any other: one line (or the --json envelope) naming the
 * closest command, exit 2, instead of oclif's own banner with exit 0 or 127.
 */
const hook: Hook.CommandNotFound = async function (opts) {
  const spaced = (id: string) => id.split(':').join(' ')
  const argv = opts.argv ?? []
  // oclif joins every word after a topic into the id ("bundle:buidl:site.yaml"): the words typed.
  const words = [...opts.id.split(':'), ...argv.filter((a) => !a.startsWith('-'))].filter(Boolean)
  const topics = new Set(this.config.topics.map((t) => t.name))
  const ids = [...this.config.commandIDs, ...topics]
  let known = 0
  while (known < words.length - 1 && topics.has(words.slice(0, known + 1).join(':'))) known++
  let typed = words.slice(0, known + 1)
  let guess: string | undefined
  for (let k = Math.min(3, words.length); k >= 1 && !guess; k--) {
    const hit = closest(words.slice(0, k).join(':'), ids.filter((id) => id.split(':').length === k))
    if (hit && k > known) [guess, typed] = [hit, words.slice(0, k)]
  }
  const message = `unknown command "${spaced(typed.join(':'))}"${guess ? ` (did you mean "ferry ${spaced(guess)}"?)` : ''}; "ferry help" lists the commands`
  process.exitCode = ExitCode.usage
  if ([...argv, ...opts.id.split(':')].includes('--json')) {
    process.stdout.write(`${JSON.stringify({status: ExitCode.usage, error: {code: 'UNKNOWN_COMMAND', message}})}\n`)
  } else {
    process.stderr.write(`ferry: ${message}\n`)
  }
  return {unknown: opts.id}
}

export default hook
