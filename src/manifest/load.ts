import {dirname, resolve} from 'node:path'
import {isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node} from 'yaml'
import type {z} from 'zod'
import {FerryError, usageError} from '../errors.js'
import {didYouMean} from '../suggest.js'
import {fieldName, readSmallText} from './input-file.js'
import {Manifest} from './schema.js'

export interface LoadedManifest {
  manifest: Manifest
  /** absolute folder of the manifest; relative paths inside it (keys) start here */
  dir: string
  /** absolute path of the manifest */
  path: string
}

/**
 * Reads and validates a manifest. Errors name the file, the line and the field:
 * `site.yaml:12: spec.k3s.versoin: unknown field`.
 */
export async function loadManifest(path: string): Promise<LoadedManifest> {
  const text = await readSmallText(path, 'manifest')
  const manifest = parseManifest(text, path)
  const abs = resolve(path)
  return {manifest, dir: dirname(abs), path: abs}
}

/** Parses manifest text; `label` is the file name used in error messages. */
export function parseManifest(text: string, label: string): Manifest {
  const lines = new LineCounter()
  const doc = parseDocument(text, {lineCounter: lines, prettyErrors: false, uniqueKeys: true})
  if (doc.errors.length > 0) {
    const e = doc.errors[0]
    const line = lines.linePos(e.pos[0]).line
    const reason = e.code === 'DUPLICATE_KEY' ? `duplicate key ${quoteKeyAt(text, e.pos)}(each field may appear once)` : e.message
    throw usageError('MANIFEST_YAML', `${label}:${line}: ${reason}`)
  }
  if (doc.contents === null) throw usageError('MANIFEST_INVALID', `${label}: the manifest is empty`)
  expandVariables(doc, lines, label)
  const data: unknown = doc.toJS({maxAliasCount: 100})
  if (isLockData(data)) {
    throw usageError('IS_A_LOCK', `${label} is a lock (written by "ferry manifest lock"), not a manifest: give the manifest (.yaml) it was made from; "ferry bundle build ${label}" builds from the lock as it is`)
  }
  const parsed = Manifest.safeParse(data)
  if (parsed.success) return parsed.data
  const problems = parsed.error.issues.flatMap((issue) => describeIssue(issue, doc, lines, data, text))
  problems.sort((a, b) => a.line - b.line)
  const shown = problems.slice(0, 10).map((p) => `${label}:${p.line}: ${p.text}`)
  if (problems.length > shown.length) shown.push(`${label}: … and ${problems.length - shown.length} more`)
  const message = shown.join('\n')
  throw new FerryError('usage', 'MANIFEST_INVALID', message, {details: {problems: problems.length}})
}

/**
 * `${VAR}` and `${VAR:-default}` in string values take the environment's value, so one manifest
 * can point at a mirror per build site. An unset variable without a default is an error.
 */
function expandVariables(doc: Document, lines: LineCounter, label: string): void {
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return
      node.value = node.value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
        const value = process.env[name]
        if (value !== undefined && value !== '') return value
        if (fallback !== undefined) return fallback
        const line = lines.linePos(node.range?.[0] ?? 0).line
        throw usageError('MANIFEST_VARIABLE', `${label}:${line}: \${${name}} is not set (set it, or write \${${name}:-default})`)
      })
    },
  })
}

function quoteKeyAt(text: string, pos: [number, number]): string {
  const key = /^("[^"\n]*"|'[^'\n]*'|[^:\n]+?)\s*:/.exec(text.slice(pos[0], pos[0] + 200))?.[1]
  return key ? `"${key.replace(/^["']|["']$/g, '')}" ` : ''
}

interface Problem {
  line: number
  text: string
}

type Issue = z.core.$ZodIssue

function describeIssue(issue: Issue, doc: Document, lines: LineCounter, data: unknown, text: string): Problem[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol')
  const found = locate(doc, path)
  const lineOf = (offset: number) => lines.linePos(offset).line
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const keyNode = found.node && isMap(found.node) ? found.node.items.find((p) => isPair(p) && scalarText(p.key) === key)?.key : undefined
      const offset = (keyNode as Node | undefined)?.range?.[0] ?? found.offset
      return {line: lineOf(offset), text: `${fieldName([...path, key])}: unknown field${didYouMean(key, fieldsAt(Manifest, path))}`}
    })
  }
  return [{line: lineOf(found.offset), text: `${fieldName(path) || '(top level)'}: ${reason(issue, path, data, sourceOf(found.node, text))}`}]
}

/** The value as written in the file (`1.0`, where the parsed number says 1). */
function sourceOf(node: unknown, text: string): string | undefined {
  const range = isScalar(node) ? node.range : undefined
  return range ? text.slice(range[0], range[1]).trim() : undefined
}

function reason(issue: Issue, path: Array<string | number>, data: unknown, written: string | undefined): string {
  if (issue.code !== 'invalid_type') return issue.message
  const value = valueAt(data, path)
  if (value === undefined) return 'missing (required)'
  if (value === null) return `empty (expected ${article(issue.expected)})`
  if (issue.expected === 'string' && typeof value === 'number') {
    const shown = written ?? String(value)
    return `expected a string, got the number ${shown} (quote it: "${shown}")`
  }
  return `expected ${article(issue.expected)}, got ${Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'a map' : `${typeof value} ${JSON.stringify(value)}`}`
}

function article(expected: string): string {
  if (expected === 'array') return 'a list'
  if (expected === 'object') return 'a map'
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`
}

function valueAt(data: unknown, path: Array<string | number>): unknown {
  let v = data
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<string | number, unknown>)[seg]
  }
  return v
}


function scalarText(node: unknown): string | undefined {
  return isScalar(node) ? String(node.value) : undefined
}

/**
 * Follows a field path through the YAML tree. Returns the node reached and the
 * offset to report: where its key is (a list item: where the item starts). A field
 * the file lacks is reported where its parent is.
 */
function locate(doc: Document, path: Array<string | number>): {node?: unknown; offset: number} {
  let node: unknown = doc.contents
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && scalarText(p.key) === String(seg))
      if (!pair) return {node: undefined, offset}
      node = pair.value
      offset = (pair.key as Node | null)?.range?.[0] ?? offset
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      node = node.items[seg]
      offset = (node as Node | null)?.range?.[0] ?? offset
    } else {
      return {node: undefined, offset}
    }
  }
  return {node, offset}
}

/** A lock file read where a manifest was expected: JSON is YAML too, so it would parse, then fail on every field. */
function isLockData(data: unknown): boolean {
  return typeof data === 'object' && data !== null && !('apiVersion' in data) && typeof (data as {schema?: unknown}).schema === 'string' && (data as {schema: string}).schema.startsWith('ferry.lock/')
}

type SchemaDef = {type: string; shape?: Record<string, unknown>; innerType?: unknown; element?: unknown; in?: unknown; options?: unknown[]}
const defOf = (schema: unknown): SchemaDef | undefined => (schema as {_zod?: {def?: SchemaDef}} | undefined)?._zod?.def

/** The field names the schema knows at `path` (through optional, default, lists and unions), for "did you mean". */
function fieldsAt(schema: unknown, path: Array<string | number>): string[] {
  const def = defOf(schema)
  if (!def) return []
  if (def.innerType !== undefined) return fieldsAt(def.innerType, path)
  if (def.type === 'pipe') return fieldsAt(def.in, path)
  if (def.type === 'union') return [...new Set((def.options ?? []).flatMap((o) => fieldsAt(o, path)))]
  if (def.type === 'array') return typeof path[0] === 'number' ? fieldsAt(def.element, path.slice(1)) : []
  if (def.type !== 'object' || !def.shape) return []
  if (path.length === 0) return Object.keys(def.shape)
  const next = def.shape[String(path[0])]
  return next === undefined ? [] : fieldsAt(next, path.slice(1))
}
