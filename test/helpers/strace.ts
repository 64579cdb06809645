// Runs the ferry binary under `strace -f` and checks the syscalls it made on files against crash-consistency
// rules of the kind ALICE (Pillai et al., OSDI 2014) derives: what a power cut may lose is whatever was not
// made durable by an fsync, so a file renamed into place, a new folder and a removed file only count once
// their data and their folder were flushed, and before anything that depends on them is published.
//
//   const trace = await traceFerry(['device', 'import', bundle, '--root', root], join(dir, 'import.trace'))
//   const found = checkCrashRules(parseTrace(await readFile(trace.file, 'utf8')), {under: [root], journal: [paths.state]})
import {spawn} from 'node:child_process'
import {dirname, resolve} from 'node:path'
import {REPO} from './cli.js'

/** Syscalls that change files, flush them, or start another program. */
const TRACED = [
  'openat', 'open', 'creat', 'write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'copy_file_range', 'sendfile',
  'ftruncate', 'fallocate', 'fsync', 'fdatasync', 'syncfs', 'rename', 'renameat', 'renameat2', 'link', 'linkat',
  'symlink', 'symlinkat', 'unlink', 'unlinkat', 'mkdir', 'mkdirat', 'rmdir', 'execve',
]

export interface TracedRun {
  code: number | null
  stdout: string
  stderr: string
  file: string
}

/** Runs `ferry ARGS` under strace, the trace written to `file` (one line per syscall, fds shown with their paths). */
export function traceFerry(args: string[], file: string, env: Record<string, string> = {}): Promise<TracedRun> {
  return new Promise((done, fail) => {
    const child = spawn('strace', ['-f', '-qq', '-y', '-s', '0', '-o', file, '-e', `trace=${TRACED.join(',')}`, `${REPO}/bin/run.js`, ...args], {
      cwd: REPO,
      env: {...process.env, NO_COLOR: '1', ...env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', fail)
    child.on('close', (code) => done({code, stdout, stderr, file}))
  })
}

export interface Call {
  /** position of the call's start and end in the trace (a call another thread interrupted spans lines) */
  start: number
  end: number
  pid: number
  name: string
  /** the path arguments, resolved against their dirfd (or the fd's path for calls on an fd) */
  paths: string[]
  /** flags of openat/open (O_CREAT, O_EXCL, …) */
  flags: string[]
  /** the return value; -1 for a failed call */
  ret: number
  /** the path of the fd an openat returned */
  opened?: string
}

const QUOTED = /"((?:[^"\\]|\\.)*)"/g

/** `18</a/b>` → `/a/b`; AT_FDCWD</cwd> → `/cwd`. */
function fdPath(arg: string): string | undefined {
  return /<([^>]*)>$/.exec(arg.trim())?.[1]
}

export function splitArgs(text: string): string[] {
  const out: string[] = []
  let depth = 0
  let quoted = false
  let cur = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      cur += c
      if (c === '\\') cur += text[++i] ?? ''
      else if (c === '"') quoted = false
      continue
    }
    if (c === '"') quoted = true
    if (c === '(' || c === '[' || c === '{' || c === '<') depth++
    if (c === ')' || c === ']' || c === '}' || c === '>') depth--
    if (c === ',' && depth === 0) {
      out.push(cur.trim())
      cur = ''
    } else cur += c
  }
  if (cur.trim()) out.push(cur.trim())
  return out
}

const unquote = (arg: string) => arg.replace(QUOTED, '$1')

function at(dirArg: string, pathArg: string): string {
  const p = unquote(pathArg)
  return p.startsWith('/') ? resolve(p) : resolve(fdPath(dirArg) ?? '/', p)
}

/** Parses `strace -f -y` output into calls, joining "<unfinished ...>" with its "resumed" line. */
export function parseTrace(text: string): Call[] {
  const calls: Call[] = []
  const open = new Map<number, {start: number; head: string}>()
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\d+)\s+(.*)$/.exec(lines[i])
    if (!m) continue
    const pid = Number(m[1])
    let body = m[2]
    let start = i
    if (body.endsWith('<unfinished ...>')) {
      open.set(pid, {start: i, head: body.slice(0, -'<unfinished ...>'.length)})
      continue
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(body)
    if (resumed) {
      const head = open.get(pid)
      open.delete(pid)
      if (!head) continue
      body = head.head + resumed[2]
      start = head.start
    }
    const call = /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$/.exec(body)
    if (!call) continue
    const [, name, argText, retText, rest] = call
    const args = splitArgs(argText)
    const ret = retText === '?' ? 0 : Number(retText)
    const c: Call = {start, end: i, pid, name, paths: [], flags: [], ret}
    switch (name) {
      case 'openat':
        c.paths = [at(args[0], args[1])]
        c.flags = (args[2] ?? '').split('|')
        c.opened = fdPath(rest.trim().split(' ')[0] ?? '') ?? (/^<([^>]*)>/.exec(rest.trim())?.[1])
        break
      case 'open':
      case 'creat':
        c.paths = [resolve(unquote(args[0]))]
        c.flags = name === 'creat' ? ['O_CREAT'] : (args[1] ?? '').split('|')
        c.opened = /^<([^>]*)>/.exec(rest.trim())?.[1]
        break
      case 'rename':
      case 'link':
      case 'symlink':
        c.paths = name === 'symlink' ? [unquote(args[0]), resolve(unquote(args[1]))] : [resolve(unquote(args[0])), resolve(unquote(args[1]))]
        break
      case 'renameat':
      case 'renameat2':
      case 'linkat':
        c.paths = [at(args[0], args[1]), at(args[2], args[3])]
        break
      case 'symlinkat':
        c.paths = [unquote(args[0]), at(args[1], args[2])]
        break
      case 'unlink':
      case 'rmdir':
      case 'mkdir':
        c.paths = [resolve(unquote(args[0]))]
        break
      case 'unlinkat':
      case 'mkdirat':
        c.paths = [at(args[0], args[1])]
        if (name === 'unlinkat' && (args[2] ?? '').includes('AT_REMOVEDIR')) c.name = 'rmdir'
        if (name === 'unlinkat' && c.name !== 'rmdir') c.name = 'unlink'
        if (name === 'mkdirat') c.name = 'mkdir'
        break
      case 'copy_file_range':
        c.paths = [fdPath(args[2]) ?? '']
        break
      case 'execve':
        c.paths = [unquote(args[0])]
        break
      default:
        // calls on an fd: write, pwrite64, fsync, ftruncate, …
        c.paths = [fdPath(args[0]) ?? '']
    }
    if (name === 'renameat') c.name = 'rename'
    if (name === 'renameat2') c.name = 'rename'
    if (name === 'linkat') c.name = 'link'
    if (name === 'symlinkat') c.name = 'symlink'
    if (name === 'creat') c.name = 'open'
    if (name === 'openat') c.name = 'open'
    calls.push(c)
  }
  return calls
}

export interface Violation {
  rule: 'data-before-rename' | 'entry-before-publish' | 'durable-before-exit' | 'journal-before-side-effect'
  message: string
  /** the trace line of the call at fault */
  line: number
}

export interface CheckOptions {
  /** only files under these folders are checked (the device root, a bundle's output folder) */
  under: string[]
  /** the journal files: after each rename onto one, its folder is flushed before the next side effect */
  journal?: string[]
  /** folders whose entries need not be durable (a cache hashed again on use) */
  cache?: string[]
}

const WRITES = new Set(['write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'copy_file_range', 'sendfile', 'ftruncate', 'fallocate'])
const SYNCS = new Set(['fsync', 'fdatasync'])

/** The part of a path that names a file for a reader: hex digests and random suffixes shortened. */
export function shortPath(p: string, under: string[]): string {
  const root = under.find((u) => p === u || p.startsWith(u + '/'))
  const rel = root ? p.slice(root.length) || '/' : p
  return rel.replace(/[0-9a-f]{16,}/g, '<hex>').replace(/\.[0-9a-f]{8}\.tmp$/, '.<rand>.tmp')
}

/**
 * Checks the rules on a trace:
 * - data-before-rename: a file renamed into place was fsynced after its last write;
 * - entry-before-publish: a rename publishes, so every entry made earlier in another folder (a rename into
 *   it, a new file or folder, a link, an unlink) is durable first (that folder fsynced after it);
 * - durable-before-exit: when the command ends, every file it wrote and kept is fsynced and every folder
 *   entry it made or removed is durable (the lock's unlink included);
 * - journal-before-side-effect: after a rename onto the journal, its folder is fsynced before the next change.
 */
export function checkCrashRules(calls: Call[], options: CheckOptions): Violation[] {
  const inScope = (p: string) => options.under.some((u) => p === u || p.startsWith(u + '/')) && !(options.cache ?? []).some((c) => p === c || p.startsWith(c + '/'))
  const short = (p: string) => shortPath(p, options.under)
  const found: Violation[] = []
  /** files with writes not yet fsynced: path → line of the last write */
  const dirty = new Map<string, number>()
  /** folder entries not yet durable: one per change, with the folder it is in */
  let pending: Array<{dir: string; path: string; what: string; end: number}> = []
  /** files this run created: their creation stops mattering once they are renamed away or removed */
  const created = new Set<string>()
  /** violations by a new file's creation, dropped if the file turns out a temp (renamed away or removed) */
  const tentative = new Map<string, Violation[]>()
  const forget = (path: string) => {
    pending = pending.filter((e) => !(e.path === path && e.what.startsWith('created')))
    tentative.delete(path)
  }
  const stillPending = (path: string) => pending.some((e) => e.path === path && e.what.startsWith('created'))
  /** a journal rename whose folder is not yet flushed */
  let journal: {dir: string; line: number} | undefined
  const journals = new Set(options.journal ?? [])
  const entry = (path: string, what: string, c: Call) => {
    if (inScope(dirname(path))) pending.push({dir: dirname(path), path, what, end: c.end})
  }
  const sideEffect = (c: Call, what: string) => {
    if (journal && c.start > journal.line) {
      found.push({rule: 'journal-before-side-effect', message: `${what} after the journal was renamed, before ${short(journal.dir)} was fsynced`, line: c.end})
      journal = undefined
    }
  }
  for (const c of calls) {
    if (c.ret < 0) continue
    const [p, q] = c.paths
    if (c.name === 'execve') {
      if (c.start > 0) sideEffect(c, `running ${c.paths[0]}`)
      continue
    }
    if (!inScope(p ?? '') && !inScope(q ?? '')) continue
    if (c.name === 'open') {
      if (c.flags.includes('O_CREAT')) {
        created.add(p)
        entry(p, `created ${short(p)}`, c)
        sideEffect(c, `creating ${short(p)}`)
      }
      if (c.flags.includes('O_TRUNC') && !c.flags.includes('O_RDONLY')) dirty.set(p, c.end)
    } else if (WRITES.has(c.name)) {
      dirty.set(p, c.end)
      sideEffect(c, `writing ${short(p)}`)
    } else if (SYNCS.has(c.name)) {
      dirty.delete(p)
      pending = pending.filter((e) => !(e.dir === p && e.end < c.start))
      if (journal && journal.dir === p) journal = undefined
    } else if (c.name === 'rename') {
      if (dirty.has(p)) {
        found.push({rule: 'data-before-rename', message: `${short(p)} renamed to ${short(q)} without an fsync after its last write`, line: c.end})
        dirty.delete(p)
      }
      sideEffect(c, `renaming ${short(p)}`)
      const stale = pending.filter((e) => e.dir !== dirname(q) && e.end < c.start)
      for (const e of stale) {
        const v: Violation = {rule: 'entry-before-publish', message: `${e.what} (in ${short(e.dir)}) not durable before ${short(q)} was renamed into place`, line: c.end}
        if (e.what.startsWith('created ') && created.has(e.path)) tentative.set(e.path, [...(tentative.get(e.path) ?? []), v])
        else found.push(v)
      }
      pending = pending.filter((e) => !stale.includes(e))
      forget(p)
      if (created.delete(p)) created.add(q)
      entry(q, `renamed ${short(p)} to ${short(q)}`, c)
      if (journals.has(q)) journal = {dir: dirname(q), line: c.end}
    } else if (c.name === 'link' || c.name === 'symlink') {
      sideEffect(c, `linking ${short(q)}`)
      created.add(q)
      entry(q, `linked ${short(q)}`, c)
    } else if (c.name === 'mkdir') {
      sideEffect(c, `creating ${short(p)}/`)
      created.add(p)
      entry(p, `created folder ${short(p)}`, c)
    } else if (c.name === 'unlink' || c.name === 'rmdir') {
      sideEffect(c, `removing ${short(p)}`)
      for (const k of [...dirty.keys()]) if (k === p || k.startsWith(p + '/')) dirty.delete(k)
      // entries inside a removed folder no longer matter; a file made and removed by this run changed nothing
      pending = pending.filter((e) => !(e.dir === p || e.dir.startsWith(p + '/')))
      // made and removed by this run before its creation reached the disk: nothing changed there
      if (created.delete(p) && stillPending(p)) forget(p)
      else {
        forget(p)
        entry(p, `removed ${short(p)}`, c)
      }
    }
  }
  for (const list of tentative.values()) found.push(...list)
  const last = calls.at(-1)?.end ?? 0
  for (const [file, line] of dirty) if (inScope(file)) found.push({rule: 'durable-before-exit', message: `${short(file)} written but never fsynced`, line})
  for (const e of pending) found.push({rule: 'durable-before-exit', message: `${e.what} (in ${short(e.dir)}) not durable when the command ended`, line: last})
  return found
}
