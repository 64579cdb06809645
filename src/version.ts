import {readFileSync} from 'node:fs'

/** Ferry's own version, from its package.json ('0' where that cannot be read). */
export const FERRY_VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {version?: string}).version ?? '0'
  } catch {
    return '0'
  }
})()
