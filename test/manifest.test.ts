import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {loadManifest, parseManifest} from '../src/manifest/load.js'
import {FerryError} from '../src/errors.js'

const VALID = `# a site manifest
apiVersion: ferry/v1
kind: Bundle
metadata:
  name: edge-site
  version: 2026.11.0
spec:
  expiresIn: 30d
  vm:
    - name: azurelinux
      url: https://example.test/azl/azurelinux-3.0-x86_64.vhdx
      checksums: https://example.test/azl/SHA256SUMS
      signature: {url: https://example.test/azl/SHA256SUMS.asc, key: keys/azl.asc}
  k3s:
    version: v1.30.4+k3s1
  kubernetes:
    version: v1.30.4
  images: [registry.example.test/app/api:1.4.2]
  files:
    - url: https://example.test/files/tool.tar.gz
      sha256: ${'AB'.repeat(32)}
  health:
    - name: nodes-ready
      run: k3s kubectl get nodes
`

/** Runs fn, expecting a FerryError; returns it. */
function failure(fn: () => unknown): FerryError {
  try {
    fn()
  } catch (err) {
    assert.instance(err, FerryError)
    return err as FerryError
  }
  throw new assert.Assertion({message: 'expected a FerryError, nothing was thrown', operator: 'throws', generated: false})
}

/** VALID with one line replaced (1-based line number), or lines inserted after it. */
function edit(line: number, replacement: string[], remove = 1): string {
  const lines = VALID.split('\n')
  lines.splice(line - 1, remove, ...replacement)
  return lines.join('\n')
}

const schema = suite('manifest schema')

schema('a valid manifest gets its defaults filled in', () => {
  const m = parseManifest(VALID, 'site.yaml')
  assert.equal(m.spec.platforms, ['linux/amd64'])
  assert.is(m.spec.expiresIn, '30d')
  assert.equal(m.spec.kubernetes?.binaries, ['kubelet', 'kubectl', 'kubeadm'])
  assert.is(m.spec.kubernetes?.base, 'https://dl.k8s.io')
  assert.is(m.spec.k3s?.airgapImages, true)
  assert.is(m.spec.k3s?.base, 'https://github.com/k3s-io/k3s/releases/download')
  assert.is(m.spec.files[0].sha256, 'ab'.repeat(32), 'sha256 is lower-cased')
  assert.is(m.spec.health[0].timeout, '60s')
  assert.equal(m.spec.images, ['registry.example.test/app/api:1.4.2'])
})

schema('malformed YAML is a usage error naming the file and line', () => {
  const e = failure(() => parseManifest(edit(15, ['    version: [v1.30.4']), 'site.yaml'))
  assert.is(e.exit, 2)
  assert.is(e.code, 'MANIFEST_YAML')
  assert.match(e.message, /^site\.yaml:1[56]: /)
})

schema('a duplicate key is refused with its line', () => {
  const e = failure(() => parseManifest(edit(7, ['  name: again'], 0), 'site.yaml'))
  assert.is(e.exit, 2)
  assert.is(e.code, 'MANIFEST_YAML')
  assert.match(e.message, 'site.yaml:7: duplicate key "name"')
})

schema('an unknown field is refused, naming the field and its line', () => {
  const e = failure(() => parseManifest(edit(16, ['    versoin: v1.30.4+k3s1'], 0), 'site.yaml'))
  assert.is(e.exit, 2)
  assert.is(e.code, 'MANIFEST_INVALID')
  assert.match(e.message, 'site.yaml:16: spec.k3s.versoin: unknown field')
})

schema('an unknown field inside a list item names the item', () => {
  const e = failure(() => parseManifest(edit(14, ['      sha: abc'], 0), 'site.yaml'))
  assert.match(e.message, 'site.yaml:14: spec.vm[0].sha: unknown field')
})

schema('a version that is not semver names the field and line', () => {
  const e = failure(() => parseManifest(edit(6, ['  version: v2026.11']), 'site.yaml'))
  assert.is(e.exit, 2)
  assert.match(e.message, 'site.yaml:6: metadata.version: not a semantic version')
})

schema('a number where a version belongs says it as written, and that quoting alone would not do', () => {
  const e = failure(() => parseManifest(edit(6, ['  version: 1.0']), 'site.yaml'))
  assert.match(e.message, 'site.yaml:6: metadata.version: expected a string, got the number 1.0; quoted, "1.0" would not do either')
})

schema('a k3s version that is no release tag is refused', () => {
  const e = failure(() => parseManifest(edit(15, ['    version: 1.30.4']), 'site.yaml'))
  assert.match(e.message, 'site.yaml:15: spec.k3s.version: not a k3s release')
})

schema('a missing required field is reported at its parent', () => {
  const e = failure(() => parseManifest(edit(17, ['    binaries: [kubectl]']), 'site.yaml'))
  assert.match(e.message, 'site.yaml:16: spec.kubernetes.version: missing (required)')
})

schema('vm needs exactly one of checksums or sha256', () => {
  const e = failure(() => parseManifest(edit(12, [`      sha256: ${'a'.repeat(64)}`], 0), 'site.yaml'))
  assert.match(e.message, /site\.yaml:13: spec\.vm\[0\]\.checksums: give exactly one of/)
})

schema('k3s takes version or channel, not both', () => {
  const e = failure(() => parseManifest(edit(16, ['    channel: stable'], 0), 'site.yaml'))
  assert.match(e.message, /spec\.k3s\.version: give exactly one of "version" or "channel"/)
})

schema('durations, URLs and platforms are checked', () => {
  const bad = VALID.replace('expiresIn: 30d', 'expiresIn: 30 days\n  platforms: [amd64]').replace('https://example.test/files/tool.tar.gz', 'ftp://example.test/tool')
  const e = failure(() => parseManifest(bad, 'site.yaml'))
  assert.match(e.message, 'site.yaml:8: spec.expiresIn: not a duration')
  assert.match(e.message, 'site.yaml:9: spec.platforms[0]: not a platform')
  assert.match(e.message, 'spec.files[0].url: not an http(s) URL')
})

schema('a file dest must stay inside the slot', () => {
  const e = failure(() => parseManifest(edit(22, ['      dest: ../../etc/passwd'], 0), 'site.yaml'))
  assert.match(e.message, 'site.yaml:22: spec.files[0].dest: not a relative path inside the slot')
})

schema('a health check needs run or http', () => {
  const e = failure(() => parseManifest(edit(24, []), 'site.yaml'))
  assert.match(e.message, 'site.yaml:23: spec.health[0].run: give exactly one of "run" (command) or "http" (URL)')
})

schema('an empty file is refused', () => {
  const e = failure(() => parseManifest('# nothing\n', 'site.yaml'))
  assert.is(e.code, 'MANIFEST_INVALID')
})

schema('${VAR} and ${VAR:-default} take the environment; an unset one names its line', () => {
  process.env.FERRY_TEST_MIRROR = 'http://127.0.0.1:9'
  const text = VALID.replace('https://example.test/azl/SHA256SUMS\n', '${FERRY_TEST_MIRROR}/SHA256SUMS\n').replace(
    'https://example.test/files/tool.tar.gz',
    '${FERRY_TEST_UNSET_VAR:-http://fallback.test}/tool.tar.gz',
  )
  const m = parseManifest(text, 'site.yaml')
  assert.is(m.spec.vm[0].checksums, 'http://127.0.0.1:9/SHA256SUMS')
  assert.is(m.spec.files[0].url, 'http://fallback.test/tool.tar.gz')
  const err = failure(() => parseManifest(VALID.replace('https://example.test/files/tool.tar.gz', '${FERRY_TEST_UNSET_VAR}/x'), 'site.yaml'))
  assert.is(err.code, 'MANIFEST_VARIABLE')
  assert.match(err.message, /^site\.yaml:20: \$\{FERRY_TEST_UNSET_VAR\} is not set/)
  delete process.env.FERRY_TEST_MIRROR
})

const files = suite('manifest files')
let dir = ''
files.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-manifest-'))
})
files.after(async () => {
  await rm(dir, {recursive: true, force: true})
})

files('loadManifest returns the manifest with its absolute folder', async () => {
  const path = join(dir, 'site.yaml')
  await writeFile(path, VALID)
  const loaded = await loadManifest(path)
  assert.is(loaded.dir, dir)
  assert.is(loaded.path, path)
  assert.is(loaded.manifest.metadata.name, 'edge-site')
})

files('errors carry the path as given', async () => {
  const path = join(dir, 'broken.yaml')
  await writeFile(path, VALID.replace('kind: Bundle', 'kind: Bundel'))
  try {
    await loadManifest(path)
    assert.unreachable('should have thrown')
  } catch (err) {
    assert.match((err as Error).message, `${path}:3: kind: must be Bundle`)
  }
})

files('a missing manifest is a usage error', async () => {
  try {
    await loadManifest(join(dir, 'nope.yaml'))
    assert.unreachable('should have thrown')
  } catch (err) {
    assert.is((err as FerryError).exit, 2)
    assert.match((err as Error).message, 'no such file')
  }
})

schema.run()
files.run()
