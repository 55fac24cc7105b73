// A connection as bench_probe: inserts and progress checks that never count against the system measured.
import pg from 'pg'

export interface Probe {
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<T[]>
  /** Runs `statements` in one transaction and returns the WAL insert position before the commit. */
  insertAndMark(statements: { text: string; values?: unknown[] }[]): Promise<string>
  close(): Promise<void>
}

export async function openProbe(url: string): Promise<Probe> {
  const client = new pg.Client({ connectionString: url, application_name: 'bench:probe' })
  await client.connect()
  return {
    async query(text, values) {
      return (await client.query(text, values)).rows
    },
    async insertAndMark(statements) {
      await client.query('begin')
      try {
        for (const s of statements) await client.query(s.text, s.values)
        const r = await client.query<{ lsn: string }>(
          'select pg_current_wal_insert_lsn()::text as lsn',
        )
        await client.query('commit')
        return r.rows[0]!.lsn
      } catch (e) {
        await client.query('rollback').catch(() => {})
        throw e
      }
    },
    close: () => client.end(),
  }
}
