// Which registry entries status counts as live workers: each judged by the lease length it notes, as it beats once per lease when idle.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { workerPresence } from '../../src/outbox/worker-presence.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

/** An entry that last beat `silentSeconds` ago, noting `leaseSeconds` (null: an older binary's). */
async function entry(id: string, leaseSeconds: number | null, silentSeconds: number) {
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, lease_seconds, last_heartbeat_at)
     values ($1, 'h', 1, 'v', $2, now() - make_interval(secs => $3))`,
    [id, leaseSeconds, silentSeconds],
  )
}

/** Live workers as status reads them with LEASE_SECONDS 60 (two of it for an entry that notes none). */
async function live(): Promise<number> {
  const p = await workerPresence(t.db, { liveSeconds: 120, overdueSeconds: 60 })
  await t.pool.query('delete from mailer.workers')
  return p.liveWorkers
}

test('a worker of a longer LEASE_SECONDS than status’s, idle between two beats, is live; one of a shorter one silent past two of its leases is not', async () => {
  await entry('long', 600, 300)
  const long = await live()
  await entry('short', 30, 100)
  const short = await live()
  await entry('older', null, 100)
  const older = await live()
  expect({ long, short, older }).toEqual({ long: 1, short: 0, older: 1 })
})
