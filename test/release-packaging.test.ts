// The systemd units that run the monthly release job: systemd-analyze verify accepts them, the timer is
// monthly, catches up a missed month and spreads its start, and every variable the service line uses
// is set by the EnvironmentFile example that ships with them; the service line, expanded as systemd does
// with that example, makes a release.
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ferry, REPO} from './helpers/cli.js'
import {makeReleaseUpstream} from './helpers/release-upstream.js'

const exec = promisify(execFile)
const test = suite('release-packaging')
const unit = (name: string) => readFile(join(REPO, 'packaging', name), 'utf8')

/** `Key=value` lines of a unit or environment file (comments and sections left out). */
const settings = (text: string) =>
  Object.fromEntries(
    text
      .split('\n')
      .filter((l) => /^[A-Za-z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )

test('systemd-analyze verify accepts the service and the timer', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-units-'))
  try {
    // verify checks that ExecStart's program exists: point it at this checkout's ferry
    const service = (await unit('ferry-release.service')).replace('ExecStart=/usr/local/bin/ferry ', `ExecStart=${join(REPO, 'bin', 'run.js')} `)
    await writeFile(join(dir, 'ferry-release.service'), service)
    await writeFile(join(dir, 'ferry-release.timer'), await unit('ferry-release.timer'))
    const r = await exec('systemd-analyze', ['verify', join(dir, 'ferry-release.service'), join(dir, 'ferry-release.timer')]).catch((e) => e)
    assert.is(r.code ?? 0, 0, `${r.stderr}`)
    assert.is(r.stderr.trim(), '')
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
})

test('the timer runs monthly, catches up a missed month, and spreads the start', async () => {
  const timer = settings(await unit('ferry-release.timer'))
  assert.is(timer.OnCalendar, 'monthly')
  assert.is(timer.Persistent, 'true')
  assert.ok(Number.parseInt(timer.RandomizedDelaySec, 10) > 0)
  const {stdout} = await exec('systemd-analyze', ['calendar', timer.OnCalendar])
  assert.match(stdout, /Normalized form: \*-\*-01 00:00:00/)
})

test('the service runs release run with what the EnvironmentFile example sets', async () => {
  const service = settings(await unit('ferry-release.service'))
  assert.is(service.EnvironmentFile, '/etc/ferry/release.env')
  assert.match(service.ExecStart, /^\/usr\/local\/bin\/ferry release run /)
  const used = [...service.ExecStart.matchAll(/\$\{?([A-Z_]+)\}?/g)].map((m) => m[1])
  const example = settings(await unit('release.env.example'))
  for (const name of used) assert.ok(example[name] !== undefined, `release.env.example sets ${name}`)
  assert.match(example.FERRY_SIGN, /^--(key|gpg-key) /)
  assert.match(service.ExecStart, /--out \$\{FERRY_RELEASES\}/)
})

test('the service line, as systemd expands it with the shipped EnvironmentFile, makes a release and then finds nothing new', async () => {
  const fx = await makeReleaseUpstream()
  try {
    const service = settings(await unit('ferry-release.service'))
    // the shipped example, pointed at the loopback upstream; FERRY_RELEASE_ARGS as it ships
    const env: Record<string, string> = {...settings(await unit('release.env.example')), FERRY_MANIFEST: fx.manifest, FERRY_SIGN: `--key ${fx.key}`, FERRY_RELEASES: join(fx.root, 'releases')}
    // systemd: "${VAR}" is one argument, "$VAR" is split at spaces (nothing when empty)
    const argv = service.ExecStart.split(/\s+/).flatMap((word: string) => {
      const one = /^\$\{([A-Z_]+)\}$/.exec(word)
      if (one) return [env[one[1]] ?? '']
      const split = /^\$([A-Z_]+)$/.exec(word)
      if (split) return (env[split[1]] ?? '').split(/\s+/).filter(Boolean)
      return [word]
    })
    assert.is(argv[0], '/usr/local/bin/ferry')
    const first = await ferry(argv.slice(1), {env: {FERRY_STORE: fx.store}})
    assert.is(first.code, 0, first.stderr + first.stdout)
    assert.match(first.stdout, /^released \S+: /m)
    const again = await ferry(argv.slice(1), {env: {FERRY_STORE: fx.store}})
    assert.is(again.code, 0, again.stderr)
    assert.match(again.stdout.trimEnd().split('\n').at(-1)!, /^unchanged: the last release \S+ is current$/)
  } finally {
    await fx.close()
    await rm(fx.root, {recursive: true, force: true})
  }
})

test('every unit runs ferry where the README installs it, /usr/local/bin/ferry', async () => {
  // npm install -g --prefix /usr/local . (build machine) and the device tarball's link both put it there
  for (const name of ['ferry-release.service', 'ferry-recover.service']) {
    const line = settings(await unit(name)).ExecStart
    assert.match(line, /^\/usr\/local\/bin\/ferry /, name)
  }
  const readme = await readFile(join(REPO, 'README.md'), 'utf8')
  assert.match(readme, /ln -sf \/opt\/ferry\/ferry \/usr\/local\/bin\/ferry/)
  assert.match(readme, /npm install -g --prefix \/usr\/local \./)
})

test.run()
