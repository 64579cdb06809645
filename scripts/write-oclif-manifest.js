#!/usr/bin/env node
// Writes oclif.manifest.json after a build, so `ferry <command>` loads only that command's code
// instead of every command's at start-up. Generated, never committed.
import {Config} from '@oclif/core'
import {writeFileSync, rmSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const target = `${root}oclif.manifest.json`
rmSync(target, {force: true})
const config = await Config.load({root})
const plugin = config.plugins.get(config.pjson.name)
writeFileSync(target, JSON.stringify(plugin.manifest))
