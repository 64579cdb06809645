#!/usr/bin/env node
// The young generation stays at its starting size: Ferry streams large files through reused
// buffers and makes little short-lived garbage, so a bigger one would only hold memory (about
// 20 MiB at peak). Set here, before anything is allocated, so every way of starting Ferry gets it.
import {setFlagsFromString} from 'node:v8'
setFlagsFromString('--semi-space-growth-factor=1')
const {execute} = await import('@oclif/core')

await execute({dir: import.meta.url})
