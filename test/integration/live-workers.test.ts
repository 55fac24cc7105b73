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

/** What status reads with LEASE_SECONDS 60 (two of it for an entry that notes none); then all is removed. */
async function presence() {
  const p = await workerPresence(t.db, { liveSeconds: 120, overdueSeconds: 60 })
  await t.pool.query('delete from mailer.email_outbox; delete from mailer.workers')
  return p
}

const live = async () => (await presence()).liveWorkers
const overdue = async () => (await presence()).overdueLeases

test('a worker of a longer LEASE_SECONDS than status’s, idle between two beats, is live; one of a shorter one silent past two of its leases is not', async () => {
  await entry('long', 600, 300)
  const long = await live()
  await entry('short', 30, 100)
  const short = await live()
  await entry('older', null, 100)
  const older = await live()
  expect({ long, short, older }).toEqual({ long: 1, short: 0, older: 1 })
})

/** A row `sending` whose lease (held by `owner`) ended `endedSeconds` ago. */
async function claimEnded(owner: string, endedSeconds: number) {
  await t.pool.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at)
     values ('{"to":["a@example.com"],"subject":"s","text":"t"}', 'sending', 1, $1, gen_random_uuid(),
             now() - make_interval(secs => $2))`,
    [owner, endedSeconds],
  )
}

test('a lease ended within the reclaim period of the live workers (their own LEASE_SECONDS) is not overdue; past it, or with none live past status’s, it is', async () => {
  // A rolling deploy: the old worker (LEASE_SECONDS 30) is gone, the new one (600) reclaims once per 600 s.
  await entry('new', 600, 10)
  await claimEnded('old', 100)
  const longLive = await overdue()
  await entry('new', 600, 10)
  await claimEnded('old', 700)
  const pastLongest = await overdue()
  await entry('short', 30, 5)
  await claimEnded('old', 45)
  const pastShort = await overdue()
  await entry('older', null, 5)
  await claimEnded('old', 100)
  const olderLive = await overdue()
  await claimEnded('old', 100)
  const noneLive = await overdue()
  expect({ longLive, pastLongest, pastShort, olderLive, noneLive }).toEqual({
    longLive: 0,
    pastLongest: 1,
    pastShort: 1,
    olderLive: 1,
    noneLive: 1,
  })
})
