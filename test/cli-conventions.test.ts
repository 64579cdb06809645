// What a person or a script expects of any CLI: help and version in the usual spellings, unknown
// commands and flags answered as usage errors (exit 2, the --json envelope) with the closest name.
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {closest, editDistance} from '../src/suggest.js'
import {ferry} from './helpers/cli.js'

const test = suite('cli conventions')

test('edit distance counts a swap of neighbours as one edit', () => {
  assert.is(editDistance('buidl', 'build'), 1)
  assert.is(editDistance('kye', 'key'), 1)
  assert.is(editDistance('', 'abc'), 3)
  assert.is(closest('platfroms', ['platforms', 'health', 'images']), 'platforms')
  assert.is(closest('zzz', ['platforms', 'health']), undefined, 'nothing close is no guess')
})

test('-h, --help and "ferry help" print the same help, exit 0', async () => {
  const long = await ferry(['bundle', 'build', '--help'])
  const short = await ferry(['bundle', 'build', '-h'])
  const word = await ferry(['help', 'bundle', 'build'])
  assert.is(long.code, 0)
  assert.match(long.stdout, 'USAGE')
  assert.match(long.stdout, '$ ferry bundle build INPUT')
  assert.is(short.code, 0)
  assert.is(short.stdout, long.stdout)
  assert.is(word.code, 0)
  assert.is(word.stdout, long.stdout)
  const top = await ferry(['help'])
  assert.is(top.code, 0)
  assert.match(top.stdout, 'TOPICS')
})

test('"ferry version", --version and version --json', async () => {
  const word = await ferry(['version'])
  const flag = await ferry(['--version'])
  assert.is(word.code, 0)
  assert.match(word.stdout, /^ferry\/\d+\.\d+\.\d+ /)
  assert.is(word.stdout, flag.stdout)
  const json = await ferry(['version', '--json'])
  assert.is(json.json?.status, 0)
  assert.match(json.json?.result.version, /^\d+\.\d+\.\d+$/)
})

test('an unknown command is exit 2 with the closest command, in the --json envelope too', async () => {
  const plain = await ferry(['bundle', 'buidl', 'site.yaml'])
  assert.is(plain.code, 2)
  assert.is(plain.stderr, 'ferry: unknown command "bundle buidl" (did you mean "ferry bundle build"?); "ferry help" lists the commands\n')
  const json = await ferry(['bundel', 'verify', 'x.ferry.tar', '--json'])
  assert.is(json.code, 2)
  assert.is(json.json?.status, 2)
  assert.is(json.json?.error?.code, 'UNKNOWN_COMMAND')
  assert.match(json.json!.error!.message, 'did you mean "ferry bundle verify"?')
  const far = await ferry(['frobnicate'])
  assert.is(far.code, 2)
  assert.not.match(far.stderr, 'did you mean')
})

test('a misspelt flag names the flag meant', async () => {
  const r = await ferry(['bundle', 'build', 'site.yaml', '--kye', 'k.asc', '--json'])
  assert.is(r.code, 2)
  assert.match(r.json!.error!.message, 'Nonexistent flag: --kye (did you mean "--key"?)')
})

test('"device trust revoke" exists, as the topic says', async () => {
  const topic = await ferry(['device', 'trust', '--help'])
  assert.match(topic.stdout, 'revoke')
  const r = await ferry(['device', 'trust', 'revoke', '--help'])
  assert.is(r.code, 0)
  assert.match(r.stdout, '$ ferry device trust revoke FINGERPRINT')
})

test.run()
