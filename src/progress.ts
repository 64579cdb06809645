/** What the core reports while it works; it never draws anything itself. */
export interface ProgressEvent {
  /** e.g. "fetch", "write", "verify" */
  phase: string
  /** the artifact or file being worked on, if one */
  item?: string
  /** bytes done so far in this phase */
  done: number
  /** bytes expected in this phase, when known */
  total?: number
  /** set when done and total count things rather than bytes (e.g. "images"): shown without a rate */
  unit?: string
}

export type ProgressListener = (event: ProgressEvent) => void
