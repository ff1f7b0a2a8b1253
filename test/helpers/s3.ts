import { execa, type ResultPromise } from 'execa'
import path from 'node:path'
import { NODE, ROOT } from './cli.js'
import { tempDir } from './tmp.js'

/**
 * A real S3-compatible server for the tests: the npm package s3rver, run as its own process
 * (never a mocked client) on 127.0.0.1 with a free port, its objects in a temp dir. s3rver
 * knows one account: access key id "S3RVER", secret "S3RVER" (it checks the key id, not the
 * V4 signature, so "wrong credentials" tests use a wrong key id).
 */
export const S3_ACCESS_KEY = 'S3RVER'
export const S3_SECRET_KEY = 'S3RVER'

export interface S3Server {
  endpoint: string
  port: number
  /** Where s3rver keeps the objects: `<dir>/<bucket>/<key>._S3rver_object`. */
  dir: string
  pid: number | undefined
  stop(): Promise<void>
}

const SCRIPT = `
import S3rver from 's3rver'
const [dir, buckets] = process.argv.slice(-2)
const s = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: buckets.split(',').map((name) => ({ name })) })
const addr = await s.run()
process.stdout.write(JSON.stringify({ port: addr.port }) + '\\n')
process.on('SIGTERM', () => s.close().then(() => process.exit(0)))
`

export async function startS3(buckets: string[] = ['backups']): Promise<S3Server> {
  const tmp = tempDir('mf-s3-')
  const child: ResultPromise = execa(NODE, ['--input-type=module', '-e', SCRIPT, '--', tmp.dir, buckets.join(',')], { cwd: ROOT, reject: false, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: false })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const t = setTimeout(() => reject(new Error(`s3rver did not start: ${out}`)), 30_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = out.match(/\{"port":(\d+)\}/)
      if (m) {
        clearTimeout(t)
        resolve(Number(m[1]))
      }
    })
    child.stderr!.on('data', (c: Buffer) => {
      out += c.toString()
    })
    void child.then((r) => {
      clearTimeout(t)
      reject(new Error(`s3rver exited: ${String(r.exitCode)} ${out}`))
    })
  })
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dir: tmp.dir,
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM')
      await Promise.race([child, new Promise((r) => setTimeout(r, 5000))])
      child.kill('SIGKILL')
      tmp.cleanup()
    },
  }
}

/** The on-disk file s3rver keeps an object's bytes in (for flipping a byte). */
export function s3ObjectFile(s: S3Server, bucket: string, key: string): string {
  return path.join(s.dir, bucket, `${key}._S3rver_object`)
}
