import {readFile} from 'node:fs/promises'
import type {z} from 'zod'
import {FerryError} from '../errors.js'

/**
 * Reads a JSON file Ferry wrote and validates it with its schema; `undefined`
 * when the file does not exist. A file that is not valid is an integrity error
 * with `code`, naming the file, the field and `hint` (what to do about it).
 */
export async function readJsonFile<T>(file: string, schema: z.ZodType<T>, code: string, hint: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new FerryError('integrity', code, `${file} is not valid JSON; ${hint}`)
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new FerryError('integrity', code, `${file}: ${issue.path.join('.') || '(top)'}: ${issue.message}; ${hint}`)
  }
  return parsed.data
}
