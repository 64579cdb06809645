/** Exit codes of the CLI contract (DESIGN.md, "Output and exit codes"). */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  integrity: 3,
  trust: 4,
  upstream: 5,
  io: 6,
  health: 7,
  busy: 8,
} as const

export type ExitCodeName = keyof typeof ExitCode

/**
 * The one error class of Ferry. `code` is a stable machine-readable identifier
 * (e.g. `DIGEST_MISMATCH`), `exit` the process exit code scripts rely on.
 */
export class FerryError extends Error {
  readonly code: string
  readonly exit: number
  /** structured facts for scripts (named `data`, not `details`: test runners read `details` as a diff) */
  readonly data?: Record<string, unknown>

  /** `exit` overrides the kind's code: an interrupted run exits 128 + the signal's number */
  constructor(kind: ExitCodeName, code: string, message: string, options?: {cause?: unknown; details?: Record<string, unknown>; exit?: number}) {
    super(message, options?.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'FerryError'
    this.code = code
    this.exit = options?.exit ?? ExitCode[kind]
    this.data = options?.details
  }
}

/** What a build or release run without a signer is told (exit 2). */
export const noSignerError = (what: string) => new FerryError('usage', 'NO_SIGNER', `${what} must be signed: give --key FILE (a private key file, e.g. keys/release.key.asc) or --gpg-key FINGERPRINT (a key held by gpg); no key yet? "ferry keys generate --name release --out keys/" makes one`)

export const usageError = (code: string, message: string) => new FerryError('usage', code, message)
export const integrityError = (code: string, message: string, details?: Record<string, unknown>) =>
  new FerryError('integrity', code, message, {details})
export const trustError = (code: string, message: string) => new FerryError('trust', code, message)
export const upstreamError = (code: string, message: string, cause?: unknown) =>
  new FerryError('upstream', code, message, {cause})

const IO_CODES = new Set(['ENOSPC', 'EIO', 'EROFS', 'EDQUOT', 'ENODEV', 'ENXIO', 'ENOTCONN', 'EPERM', 'EACCES'])

/** Turn a Node system error on local files into exit 6 with a plain sentence; anything else passes through. */
export function asLocalIoError(err: unknown, what: string): unknown {
  if (err instanceof FerryError) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code && IO_CODES.has(code)) {
    const reason = code === 'ENOSPC' || code === 'EDQUOT' ? 'no space left' : code === 'EROFS' ? 'read-only filesystem' : code
    return new FerryError('io', `IO_${code}`, `${what}: ${reason} (${(err as Error).message})`, {cause: err})
  }
  return err
}

/** Normalise anything thrown into a FerryError for the output envelope. */
export function toFerryError(err: unknown): FerryError {
  if (err instanceof FerryError) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOENT') return new FerryError('usage', 'NOT_FOUND', (err as Error).message, {cause: err})
  const io = asLocalIoError(err, 'local I/O failed')
  if (io instanceof FerryError) return io
  const message = err instanceof Error ? err.message : String(err)
  return new FerryError('unexpected', 'UNEXPECTED', message, {cause: err})
}
