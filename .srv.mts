import {startFileServer} from '/work/main/src/demo/file-server.ts'
const s = await startFileServer({root: '/tmp/bb/www', port: 18555} as any)
console.log(s.url)
