import {createReadStream} from 'node:fs'
import {readFile, stat} from 'node:fs/promises'
import {createHash} from 'node:crypto'
import {join} from 'node:path'
import {checkBlob} from '../../store/blob-check.js'
import type {BlobStore} from '../../store/blob-store.js'
import type {BlobWriter} from '../../store/blob-writer.js'
import {integrityError, usageError} from '../../errors.js'
import {parseImageDocument, type Descriptor} from './document.js'
import type {FetchedDocument, ImageSource} from './source-types.js'
import {formatSource, type LayoutReference} from './reference.js'
import {indexTar, type TarMember} from './tar-index.js'

const REF_NAME = 'org.opencontainers.image.ref.name'
const MAX_JSON = 4 << 20

/** Random access to a layout's files, whether a folder or a tar of one. */
interface LayoutFiles {
  read(path: string, limit: number): Promise<Buffer>
  stream(path: string): NodeJS.ReadableStream
}

async function folderFiles(dir: string): Promise<LayoutFiles> {
  const info = await stat(dir).catch(() => undefined)
  if (!info?.isDirectory()) throw usageError('NOT_FOUND', `oci:${dir}: no such OCI layout folder; check the path (relative to the manifest's folder)`)
  return {
    async read(path, limit) {
      const file = join(dir, path)
      const size = (await stat(file).catch(() => undefined))?.size
      if (size === undefined) throw integrityError('MISSING_BLOB', `oci:${dir}: ${path} is missing from the layout`)
      if (size > limit) throw integrityError('TOO_LARGE', `oci:${dir}: ${path} is larger than ${limit} bytes`)
      return readFile(file)
    },
    stream: (path) => createReadStream(join(dir, path), {highWaterMark: 1 << 20}),
  }
}

async function archiveFiles(file: string): Promise<LayoutFiles> {
  const info = await stat(file).catch(() => undefined)
  if (!info?.isFile()) throw usageError('NOT_FOUND', `oci-archive:${file}: no such archive; check the path (relative to the manifest's folder)`)
  const members = await indexTar(file)
  const member = (path: string): TarMember => {
    const m = members.get(path)
    if (!m) throw integrityError('MISSING_BLOB', `oci-archive:${file}: ${path} is missing from the archive`)
    return m
  }
  const stream = (path: string) => {
    const m = member(path)
    return createReadStream(file, {start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20})
  }
  return {
    async read(path, limit) {
      const m = member(path)
      if (m.size > limit) throw integrityError('TOO_LARGE', `oci-archive:${file}: ${path} is larger than ${limit} bytes`)
      if (m.size === 0) return Buffer.alloc(0)
      const parts: Buffer[] = []
      for await (const chunk of stream(path)) parts.push(chunk as Buffer)
      return Buffer.concat(parts)
    },
    stream,
  }
}

const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`

/** An image in a local OCI layout (`oci:DIR:REF`) or archive (`oci-archive:FILE:REF`). */
export async function openLayoutSource(ref: LayoutReference): Promise<ImageSource> {
  const files = ref.transport === 'oci' ? await folderFiles(ref.path) : await archiveFiles(ref.path)
  const name = formatSource(ref)
  async function* counted(desc: Descriptor, onData?: (bytes: number) => void): AsyncGenerator<Buffer> {
    for await (const chunk of files.stream(blobPath(desc.digest)) as AsyncIterable<Buffer>) {
      onData?.(chunk.length)
      yield chunk
    }
  }
  const readDoc = async (desc: Descriptor): Promise<FetchedDocument> => {
    const bytes = await files.read(blobPath(desc.digest), MAX_JSON)
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex')
    if (digest !== desc.digest || bytes.length !== desc.size) {
      throw integrityError('DIGEST_MISMATCH', `${name}: ${desc.digest} in the layout does not match its content (got ${digest}, ${bytes.length} bytes)`)
    }
    return {bytes, digest, mediaType: desc.mediaType}
  }
  return {
    name,
    async root() {
      const index = parseImageDocument(await files.read('index.json', MAX_JSON), undefined, `${name} index.json`)
      if (index.kind !== 'index') throw integrityError('BAD_OCI_JSON', `${name}: index.json is not an image index`)
      const named = index.manifests.filter((m) => (ref.ref ? m.annotations?.[REF_NAME] === ref.ref : true))
      if (named.length !== 1) {
        const names = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter(Boolean)
        const why = named.length === 0 ? `has no image named "${ref.ref}"` : 'holds several images: name one'
        throw usageError('IMAGE_NOT_FOUND', `${name}: the layout ${why} (it has: ${names.join(', ') || 'no named images'})`)
      }
      return readDoc(named[0])
    },
    document: readDoc,
    config: async (desc: Descriptor) => (await readDoc(desc)).bytes,
    async fetchBlob(store: BlobStore, desc: Descriptor, onData?: (bytes: number) => void) {
      const present = await store.has(desc.digest)
      if (present && present.size === desc.size) return 0
      await store.ingest(counted(desc, onData), {digest: desc.digest, size: desc.size, what: `${name} blob ${desc.digest}`})
      return 0
    },
    async fetchBlobInto(writer: BlobWriter, desc: Descriptor, onData?: (bytes: number) => void) {
      const what = `${name} blob ${desc.digest}`
      await writer.append(counted(desc, onData), {maxSize: desc.size, what})
      checkBlob(await writer.finish(), {digest: desc.digest, size: desc.size}, what)
      return 0
    },
  }
}
