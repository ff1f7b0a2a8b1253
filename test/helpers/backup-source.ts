import path from 'node:path'
import { startWalReceiver, type WalReceiver } from '../../src/backup/archiver.js'
import { postgresRunAs } from '../../src/platform/os-user.js'
import { findPgBinaries } from '../../src/postgres/binaries.js'
import { startTestPostgres, type TestPostgres } from './pg.js'
import { tempDir } from './tmp.js'

/**
 * What backup tests back up: a real Postgres with database `app` holding `items(id, v)` of
 * `rows` rows, its WAL streamed into `<dir>/wal` by the archiver, backups under
 * `<dir>/backups`. `stop()` ends the receiver and Postgres and removes the dir.
 */
export interface BackupSource {
  src: TestPostgres
  dir: string
  backupsDir: string
  walDir: string
  receiver: WalReceiver
  stop(): Promise<void>
}

export async function startBackupSource(rows: number, prefix: string): Promise<BackupSource> {
  const tmp = tempDir(prefix)
  const walDir = path.join(tmp.dir, 'wal')
  const src = await startTestPostgres({ replication: true })
  await src.query('create database app')
  await src.query(`create table items(id int primary key, v text); insert into items select g, md5(g::text) from generate_series(1, ${rows}) g`, [], 'app')
  const receiver = await startWalReceiver({ walDir, conn: src.connection(), bins: findPgBinaries(), runAs: postgresRunAs() })
  return {
    src,
    dir: tmp.dir,
    backupsDir: path.join(tmp.dir, 'backups'),
    walDir,
    receiver,
    async stop() {
      await receiver.stop()
      await src.stop()
      tmp.cleanup()
    },
  }
}
