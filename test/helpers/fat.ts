// Real filesystems standing in for a USB stick: a FAT32 image mounted with fusefat (this kernel has no
// vfat), and ext4 on a loop device. Each helper cleans up after itself, even after a kill.
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {mkdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'

const exec = promisify(execFile)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface MountedStick {
  /** the folder to write to */
  dir: string
  image: string
  /** what /proc/self/mountinfo calls it */
  type: string
  unmount(): Promise<void>
}

export interface FatStick extends MountedStick {
  /** kill the fusefat process: the stick is pulled */
  pull(): void
  /** mount the same image again (after a pull or an unmount) */
  remount(): Promise<void>
}

async function mounted(dir: string): Promise<string | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  for (const line of info.split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-')
    if (f[4] === dir && dash > 0) return f[dash + 1]
  }
  return undefined
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await sleep(25)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** A FAT32 image of `sizeMiB` under `work`, formatted by mkfs.vfat and mounted read-write with fusefat. */
export async function makeFatStick(work: string, sizeMiB = 64): Promise<FatStick> {
  await mkdir(work, {recursive: true})
  const image = join(work, 'stick.img')
  const dir = join(work, 'stick')
  await mkdir(dir, {recursive: true})
  await exec('truncate', ['-s', `${sizeMiB}M`, image])
  await exec('mkfs.vfat', ['-F', '32', '-n', 'FERRY', image])
  let child: ChildProcess | undefined
  const mount = async () => {
    child = spawn('fusefat', ['-f', '-o', 'rw+', image, dir], {stdio: 'ignore'})
    await waitFor(async () => (await mounted(dir)) !== undefined, `fusefat to mount ${dir}`)
  }
  const unmountNow = async () => {
    if (await mounted(dir)) await exec('fusermount', ['-u', '-z', dir]).catch(() => {})
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once('exit', r))
      child.kill('SIGTERM')
      await Promise.race([gone, sleep(2000)])
    }
    child = undefined
  }
  await mount()
  return {
    dir,
    image,
    type: 'fuse.fusefat',
    pull: () => {
      child?.kill('SIGKILL')
    },
    remount: async () => {
      await unmountNow()
      await mount()
    },
    unmount: async () => {
      await unmountNow()
      await rm(work, {recursive: true, force: true})
    },
  }
}

/**
 * An ext4 filesystem of `sizeMiB` on a loop device under `work`. `solid`: the image is allocated
 * up front and formatted without lazy initialisation, as a real stick is: no first write pays for
 * the image's holes, and no background init competes with what is measured (benchmarks).
 */
export async function makeExt4Stick(work: string, sizeMiB = 256, options: {solid?: boolean} = {}): Promise<MountedStick> {
  await mkdir(work, {recursive: true})
  const image = join(work, 'ext4.img')
  const dir = join(work, 'ext4')
  await mkdir(dir, {recursive: true})
  if (options.solid) {
    await exec('fallocate', ['-l', `${sizeMiB}M`, image])
    await exec('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image])
  } else {
    await exec('truncate', ['-s', `${sizeMiB}M`, image])
    await exec('mkfs.ext4', ['-q', '-F', image])
  }
  await exec('mount', ['-o', 'loop', image, dir])
  return {
    dir,
    image,
    type: 'ext4',
    unmount: async () => {
      if (await mounted(dir)) await exec('umount', [dir]).catch(() => exec('umount', ['-l', dir]))
      await rm(work, {recursive: true, force: true})
    },
  }
}
