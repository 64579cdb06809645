// Power cuts simulated from syscall traces, in the way of ALICE (Pillai et al., OSDI 2014): a run is traced
// with `strace -f` with every byte it writes (`-xx -s <big>`), the trace is replayed on a model of the files
// under one folder, and the state a power cut at operation N would leave is what had been made durable by
// then, and nothing else:
// - a file's bytes are those it had at its last fsync/fdatasync before N (never flushed: empty, as ext4's
//   delayed allocation leaves a new file);
// - a folder's entries (new files and folders, renames in or out, links, removals) are those it had at its
//   last fsync before N; a folder never flushed keeps the entries it started with;
// - a file's permission bits (chmod) count from its next fsync, like its bytes.
// This is the pessimistic model POSIX allows (a real ext4 often keeps more); every state it gives must be
// one `device recover` brings to the old or the new release. `materialise` writes such a state into a
// fresh folder, where the real ferry binary then runs.
import {chmod, mkdir, stat, readdir, readFile, readlink, symlink, writeFile} from 'node:fs/promises'
import {join, relative, resolve, sep} from 'node:path'
import {fdPath, hex, strings} from './power-cut-trace.js'
import {splitArgs} from './strace.js'

export {traceWithData} from './power-cut-trace.js'

interface Node {
  kind: 'file' | 'dir' | 'symlink'
  data: Buffer
  /** a file's bytes at its last fsync */
  durable?: Buffer
  entries: Map<string, Node>
  /** a folder's entries at its last fsync */
  durableEntries: Map<string, Node>
  target?: string
  /** permission bits, and those at the file's last fsync */
  mode: number
  durableMode?: number
}

const newNode = (kind: Node['kind'], target?: string, mode = 0o644): Node => ({kind, data: Buffer.alloc(0), entries: new Map(), durableEntries: new Map(), mode, ...(target ? {target} : {})})

export interface Model {
  /** the number of operations replayed on files under the folder */
  ops: number
  /** writes the durable state at the cut before operation `cut` (0…ops) into `into` */
  materialise(cut: number, into: string): Promise<void>
}

async function load(dir: string): Promise<Node> {
  const node = newNode('dir')
  for (const e of await readdir(dir, {withFileTypes: true})) {
    const p = join(dir, e.name)
    let child: Node
    if (e.isDirectory()) child = await load(p)
    else if (e.isSymbolicLink()) child = newNode('symlink', await readlink(p))
    else {
      child = newNode('file', undefined, (await stat(p)).mode & 0o777)
      child.data = await readFile(p)
      child.durable = child.data
      child.durableMode = child.mode
    }
    node.entries.set(e.name, child)
    node.durableEntries.set(e.name, child)
  }
  return node
}

async function writeDurable(node: Node, into: string): Promise<void> {
  await mkdir(into, {recursive: true})
  for (const [name, child] of node.durableEntries) {
    const p = join(into, name)
    if (child.kind === 'dir') await writeDurable(child, p)
    else if (child.kind === 'symlink') await symlink(child.target!, p)
    else {
      await writeFile(p, child.durable ?? Buffer.alloc(0))
      await chmod(p, child.durableMode ?? 0o644)
    }
  }
}

function writeAt(node: Node, bytes: Buffer, at: number): void {
  if (node.kind !== 'file') return
  const end = at + bytes.length
  if (end > node.data.length) {
    const grown = Buffer.alloc(end)
    node.data.copy(grown)
    node.data = grown
  } else node.data = Buffer.from(node.data)
  bytes.copy(node.data, at)
}

/**
 * Replays traces (in order, on one model) of runs whose files under `dir` changed, starting from `dir` as
 * it was before the first run (`before`: a copy of it taken then). `ignoreFileSyncs`: a model of a program
 * that never flushed its files' bytes (what the checks must catch).
 */
export async function replay(traces: string[], dir: string, before: string, options: {ignoreFileSyncs?: boolean} = {}): Promise<Model> {
  const root = await load(before)
  const base = resolve(dir)
  const rel = (p: string | undefined) => (p && (p === base || p.startsWith(base + sep)) ? relative(base, p).split(sep).filter(Boolean) : undefined)
  const lookup = (parts: string[]): Node | undefined => {
    let n: Node | undefined = root
    for (const part of parts) n = n?.entries.get(part)
    return n
  }
  const parentOf = (parts: string[]) => ({dir: lookup(parts.slice(0, -1)), name: parts.at(-1)!})
  /** the ops on files under dir, each a closure changing the model, in trace order */
  const steps: Array<() => void> = []
  for (const file of traces) {
    const text = await readFile(file, 'utf8')
    /** fd tables: pid → its table (threads share their process's) */
    const tables = new Map<number, Map<number, {node: Node; pos: number; append: boolean}>>()
    const table = (pid: number) => {
      let t = tables.get(pid)
      if (!t) tables.set(pid, (t = new Map()))
      return t
    }
    const pending = new Map<number, string>()
    for (const line of text.split('\n')) {
      const m = /^(\d+)\s+(.*)$/.exec(line)
      if (!m) continue
      const pid = Number(m[1])
      let body = m[2]
      if (body.endsWith('<unfinished ...>')) {
        pending.set(pid, body.slice(0, -'<unfinished ...>'.length))
        continue
      }
      const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(body)
      if (resumed) {
        body = (pending.get(pid) ?? '') + resumed[1]
        pending.delete(pid)
      }
      const call = /^(\w+)\((.*)\)\s+=\s+(-?\d+)(.*)$/.exec(body)
      if (!call) continue
      const [, name, argText, retText] = call
      const ret = Number(retText)
      if (ret < 0) continue
      const args = splitArgs(argText)
      if (name === 'clone' || name === 'clone3' || name === 'fork' || name === 'vfork') {
        // a thread shares the fd table; a new process starts with a copy
        const t = table(pid)
        tables.set(ret, argText.includes('CLONE_FILES') ? t : new Map(t))
        continue
      }
      const fds = table(pid)
      const at = (dirArg: string, pathArg: string) => {
        const p = hex(pathArg).toString()
        return p.startsWith('/') ? resolve(p) : resolve(fdPath(dirArg) ?? '/', p)
      }
      const onFd = (arg: string) => fds.get(Number.parseInt(arg, 10))
      switch (name) {
        case 'open':
        case 'openat':
        case 'creat': {
          const path = name === 'openat' ? at(args[0], args[1]) : resolve(hex(args[0]).toString())
          const flags = name === 'creat' ? 'O_CREAT|O_TRUNC|O_WRONLY' : (name === 'openat' ? args[2] : args[1]) ?? ''
          const modeArg = name === 'openat' ? args[3] : name === 'creat' ? args[1] : args[2]
          const createMode = modeArg ? Number.parseInt(modeArg, 8) & 0o777 & ~0o022 : 0o644
          const parts = rel(path)
          if (!parts) {
            fds.delete(ret)
            break
          }
          // the node is found when the step runs; the fd is bound now, lazily, through a holder
          const holder = {node: newNode('file'), pos: 0, append: flags.includes('O_APPEND')}
          fds.set(ret, holder)
          steps.push(() => {
            let n = lookup(parts)
            if (!n && flags.includes('O_CREAT')) {
              const {dir, name: leaf} = parentOf(parts)
              n = newNode('file', undefined, createMode)
              dir?.entries.set(leaf, n)
            }
            if (n && flags.includes('O_TRUNC') && n.kind === 'file') n.data = Buffer.alloc(0)
            holder.node = n ?? newNode('file')
          })
          break
        }
        case 'write':
        case 'writev':
        case 'pwrite64':
        case 'pwritev':
        case 'pwritev2': {
          const h = onFd(args[0])
          if (!h) break
          // write(fd, buf, n), writev(fd, iov, cnt): at the fd's offset; pwrite64 / pwritev(fd, …, …, offset)
          const bytes = Buffer.concat(strings(args[1])).subarray(0, ret)
          const off = name.startsWith('pwrite') ? Number(args[3]) : undefined
          steps.push(() => {
            const start = off ?? (h.append ? h.node.data.length : h.pos)
            writeAt(h.node, bytes, start)
            if (off === undefined) h.pos = start + bytes.length
          })
          break
        }
        case 'copy_file_range':
        case 'sendfile': {
          const [inArg, inOff, outArg, outOff] = name === 'sendfile' ? [args[1], args[2], args[0], 'NULL'] : [args[0], args[1], args[2], args[3]]
          const src = onFd(inArg)
          const dst = onFd(outArg)
          if (!dst) break
          const num = (a: string) => (a === 'NULL' ? undefined : Number(/\d+/.exec(a)?.[0] ?? 0))
          const inAt = num(inOff)
          const outAt = num(outOff)
          steps.push(() => {
            const from = inAt ?? src?.pos ?? 0
            const bytes = (src?.node.data ?? Buffer.alloc(0)).subarray(from, from + ret)
            if (src && inAt === undefined) src.pos = from + ret
            const to = outAt ?? dst.pos
            writeAt(dst.node, bytes, to)
            if (outAt === undefined) dst.pos = to + ret
          })
          break
        }
        case 'ftruncate': {
          const h = onFd(args[0])
          if (!h) break
          const len = Number(args[1])
          steps.push(() => {
            const b = Buffer.alloc(len)
            h.node.data.copy(b, 0, 0, Math.min(len, h.node.data.length))
            h.node.data = b
          })
          break
        }
        case 'fsync':
        case 'fdatasync': {
          const h = onFd(args[0])
          if (!h) break
          steps.push(() => {
            if (h.node.kind === 'dir') h.node.durableEntries = new Map(h.node.entries)
            else if (!options.ignoreFileSyncs) {
              h.node.durable = h.node.data
              h.node.durableMode = h.node.mode
            }
          })
          break
        }
        case 'rename':
        case 'renameat':
        case 'renameat2':
        case 'link':
        case 'linkat': {
          const two = name === 'rename' || name === 'link'
          const from = rel(two ? resolve(hex(args[0]).toString()) : at(args[0], args[1]))
          const to = rel(two ? resolve(hex(args[1]).toString()) : at(args[2], args[3]))
          if (!from && !to) break
          const keep = name.startsWith('link')
          steps.push(() => {
            const n = from ? lookup(from) : newNode('file')
            if (!n) return
            if (from && !keep) parentOf(from).dir?.entries.delete(from.at(-1)!)
            if (to) parentOf(to).dir?.entries.set(to.at(-1)!, n)
          })
          break
        }
        case 'symlink':
        case 'symlinkat': {
          const target = hex(args[0]).toString()
          const parts = rel(name === 'symlink' ? resolve(hex(args[1]).toString()) : at(args[1], args[2]))
          if (!parts) break
          steps.push(() => parentOf(parts).dir?.entries.set(parts.at(-1)!, newNode('symlink', target)))
          break
        }
        case 'unlink':
        case 'unlinkat':
        case 'rmdir': {
          const parts = rel(name === 'unlinkat' ? at(args[0], args[1]) : resolve(hex(args[0]).toString()))
          if (!parts) break
          steps.push(() => parentOf(parts).dir?.entries.delete(parts.at(-1)!))
          break
        }
        case 'chmod':
        case 'fchmodat':
        case 'fchmod': {
          const mode = Number.parseInt(args.at(name === 'fchmodat' ? 2 : 1) ?? '644', 8) & 0o777
          if (name === 'fchmod') {
            const h = onFd(args[0])
            if (h) steps.push(() => void (h.node.mode = mode))
            break
          }
          const parts = rel(name === 'chmod' ? resolve(hex(args[0]).toString()) : at(args[0], args[1]))
          if (!parts) break
          steps.push(() => {
            const n = lookup(parts)
            if (n) n.mode = mode
          })
          break
        }
        case 'mkdir':
        case 'mkdirat': {
          const parts = rel(name === 'mkdirat' ? at(args[0], args[1]) : resolve(hex(args[0]).toString()))
          if (!parts) break
          steps.push(() => {
            const {dir, name: leaf} = parentOf(parts)
            if (dir && !dir.entries.has(leaf)) dir.entries.set(leaf, newNode('dir'))
          })
          break
        }
      }
    }
  }
  let done = 0
  return {
    ops: steps.length,
    async materialise(cut, into) {
      if (cut < done) throw new Error('cuts must be materialised in increasing order')
      while (done < cut) steps[done++]()
      await writeDurable(root, into)
    },
  }
}
