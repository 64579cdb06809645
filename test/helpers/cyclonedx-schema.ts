// The official CycloneDX 1.6 JSON schema, as @cyclonedx/cyclonedx-library ships it, compiled with ajv.
import {readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import Ajv, {type ErrorObject} from 'ajv'
import addFormats from 'ajv-formats'

const require = createRequire(import.meta.url)
export const SCHEMA_DIR = join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema')

const load = (name: string) => JSON.parse(readFileSync(join(SCHEMA_DIR, name), 'utf8'))

/** Validates a parsed BOM against bom-1.6; null when valid, else ajv's errors. */
export function cyclonedx16(): (bom: unknown) => ErrorObject[] | null {
  const ajv = new Ajv({strict: false, allErrors: true})
  addFormats.default(ajv)
  // held to RFC 3987 rather than skipped: with a scheme, a URL that parses; without, a relative
  // reference whose first segment has no ':' (so `host:5000/repo` is refused)
  ajv.addFormat('iri-reference', (text: string) => (/^[a-z][a-z0-9+.-]*:/i.test(text) ? URL.canParse(text) : !/^[^/?#]*:/.test(text) && !/\s/.test(text)))
  ajv.addFormat('idn-email', /^[^@\s]+@[^@\s]+$/)
  for (const name of ['spdx.SNAPSHOT.schema.json', 'jsf-0.82.SNAPSHOT.schema.json', 'cryptography-defs.SNAPSHOT.schema.json']) ajv.addSchema(load(name), `http://cyclonedx.org/schema/${name}`)
  const validate = ajv.compile(load('bom-1.6.SNAPSHOT.schema.json'))
  return (bom) => (validate(bom) ? null : (validate.errors ?? []))
}
