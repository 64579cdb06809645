import {FerryError} from '../errors.js'

/**
 * Any system error on the medium is exit 6: a full stick (fusefat answers EPERM,
 * not ENOSPC), a pulled stick (EIO, ENOTCONN, ENODEV, a vanished file), a
 * read-only mount. `what` says which file and what to do.
 */
export function mediaError(err: unknown, what: string): unknown {
  if (err instanceof FerryError) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (!code || !/^E[A-Z]+$/.test(code)) return err
  const reason =
    code === 'ENOSPC' || code === 'EDQUOT' || code === 'EPERM' || code === 'EFBIG'
      ? 'the stick is full or refused the write'
      : code === 'EROFS'
        ? 'the stick is mounted read-only'
        : code === 'ENOENT' || code === 'ENOTCONN' || code === 'EIO' || code === 'ENODEV' || code === 'ENXIO'
          ? 'the stick was removed or failed'
          : 'I/O error'
  return new FerryError('io', `MEDIA_${code}`, `${what}: ${reason} (${code})`, {cause: err})
}

