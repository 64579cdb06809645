#!/usr/bin/env -S node --max-semi-space-size=4
// A young generation capped at 4 MiB: Ferry streams large files through reused buffers and keeps
// little short-lived garbage, so a bigger one would only hold memory (about 20 MiB less at peak).
import {execute} from '@oclif/core'

await execute({dir: import.meta.url})
