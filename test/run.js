#!/usr/bin/env node
// Runs every test file in its own process (a crash in one cannot hide the others),
// two at a time, and ends with the line CI reads: "N passed, N failed".
import {spawn} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import {join, relative} from 'node:path'

const root = new URL('..', import.meta.url).pathname
const filter = process.argv[2] ? new RegExp(process.argv[2]) : undefined
const jobs = Number(process.env.FERRY_TEST_JOBS ?? 2)

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) return name === 'helpers' || name === 'fixtures' ? [] : find(p)
    return p.endsWith('.test.ts') ? [p] : []
  })
}

const files = find(join(root, 'test')).filter((f) => !filter || filter.test(f)).sort()
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '')
let passed = 0
let failed = 0
const failures = []

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, ['--import', 'tsx', file], {cwd: root, env: {...process.env, FORCE_COLOR: '0'}})
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('close', (code, signal) => {
      const text = strip(out)
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? 0)
      const ok = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? 0)
      const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0)
      let bad = total - ok - skipped
      if ((code !== 0 || signal) && bad === 0) bad = 1 // crashed before or after its summary
      passed += ok
      failed += bad
      const name = relative(root, file)
      const secs = ((Date.now() - started) / 1000).toFixed(1)
      console.log(`${bad ? 'FAIL' : 'ok  '} ${name}  (${ok} passed, ${bad} failed, ${secs}s)`)
      if (bad) failures.push({name, text})
      resolve()
    })
  })
}

const queue = [...files]
await Promise.all(
  Array.from({length: Math.min(jobs, queue.length)}, async () => {
    while (queue.length) await runFile(queue.shift())
  }),
)
for (const f of failures) console.log(`\n---- ${f.name} ----\n${f.text}`)
console.log(`\n${passed} passed, ${failed} failed`)
process.exit(failed || files.length === 0 ? 1 : 0)
