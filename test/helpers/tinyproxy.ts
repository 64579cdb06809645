// Debian's tinyproxy on a loopback port, optionally demanding basic auth; its log shows each request.
import {spawn, type ChildProcess} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import {connect} from 'node:net'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {freePort} from './registry.js'

export interface Tinyproxy {
  /** 127.0.0.1:<port> */
  host: string
  /** http://[user:password@]host, with the configured credentials */
  url: string
  /** the request lines tinyproxy logged so far ("GET http://…", "CONNECT host:port") */
  requests(): Promise<string[]>
  stop(): Promise<void>
}

export async function startTinyproxy(dir: string, auth?: {user: string; password: string}): Promise<Tinyproxy> {
  const port = await freePort()
  const log = join(dir, 'tinyproxy.log')
  const config = join(dir, 'tinyproxy.conf')
  await writeFile(
    config,
    [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${log}"`, 'LogLevel Connect', 'MaxClients 100', ...(auth ? [`BasicAuth ${auth.user} ${auth.password}`] : []), ''].join('\n'),
  )
  const child: ChildProcess = spawn('tinyproxy', ['-d', '-c', config], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d))
  let exited = false
  child.on('exit', () => (exited = true))
  const stop = async () => {
    if (exited) return
    child.kill('SIGTERM')
    for (let i = 0; i < 30 && !exited; i++) await sleep(100)
    if (!exited) child.kill('SIGKILL')
  }
  const host = `127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`tinyproxy exited: ${stderr.slice(-2000)}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (up) {
      return {
        host,
        url: `http://${auth ? `${auth.user}:${auth.password}@` : ''}${host}`,
        requests: async () =>
          (await readFile(log, 'utf8').catch(() => ''))
            .split('\n')
            .map((l) => /Request \(file descriptor \d+\): (.*)$/.exec(l)?.[1])
            .filter((l): l is string => l !== undefined),
        stop,
      }
    }
    await sleep(50)
  }
  await stop()
  throw new Error(`tinyproxy did not start: ${stderr.slice(-2000)}`)
}
