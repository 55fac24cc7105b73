// A refused worker that already gave up the pacing turns, and a working worker started after it that took rows to turns and then stopped or was killed: those turns given up too, not kept until they come due.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { deregisterWorker } from '../../src/outbox/deregister-worker.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  EXPIRED,
  GIVE_UP_ASK,
  pacedReads,
  rowsPaced,
  startPaced,
} from '../support/paced-refusal.ts'
import { throughQueries } from '../support/through-queries.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { count, reservedTurns, pendingRows } = pacedReads(t)

/**
 * A refused worker alone that gave the pacing turns up, then a working worker (its lease
 * `leaseSeconds`) started after it that claimed the nine due rows and sent them back to turns:
 * its entry live, noting no refusal. `asks`: how many times the refused worker asked to give turns up.
 */
async function laterWorkerTookTurns(leaseSeconds: number) {
  let asks = 0
  const db = throughQueries(t, async (run, text) => {
    const answer = await run()
    if (text.includes(GIVE_UP_ASK)) asks++
    return answer
  })
  // One a minute, 10 rows held an hour ahead; its entry notes a refusal, as `serve` wires it.
  const r = await startPaced(t, { deps: { db }, notesRefusal: true })
  try {
    // One sent while its token serves, the other nine back to turns a minute apart.
    await rowsPaced(t, r)
    // The turns and their rows as a working worker's send-back leaves them: written back below,
    // as the later working worker's own.
    const turns = (
      await t.pool.query(
        `select mailbox, next_at from mailer.mailbox_pacing where mailbox like 'queue %'`,
      )
    ).rows
    const paced = (
      await t.pool.query(
        `select id, send_at, last_error, last_error_code from mailer.email_outbox
          where last_error_code = 'mailbox_paced'`,
      )
    ).rows

    // Refused, alone: the turns given up at once (the refused worker's block stands until the
    // test's clock moves).
    r.clock.advance(2 * 3600_000)
    r.fake.setFaults({ token: Array.from({ length: 100 }, () => EXPIRED) })
    await enqueue(t)
    r.engine.drainer.wake()
    await pollUntil(async () =>
      asks > 0 &&
      (await reservedTurns()) === 0 &&
      (await count(`last_error_code = 'mailbox_paced'`)) === 0
        ? true
        : undefined,
    )
    expect(r.transport.blockedForMs()).toBeGreaterThan(0)

    // Another machine whose credential works starts, claims the nine due rows and sends them back
    // to turns (its rate's): its entry live, noting no refusal.
    await t.pool.query(
      `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
       values ('working:2:abcdef', 'working', 2, 'test', '', ${leaseSeconds})`,
    )
    for (const p of turns)
      await t.pool.query(`insert into mailer.mailbox_pacing (mailbox, next_at) values ($1, $2)`, [
        p.mailbox,
        p.next_at,
      ])
    for (const p of paced)
      await t.pool.query(
        `update mailer.email_outbox set send_at = $2, last_error = $3, last_error_code = $4
          where id = $1`,
        [p.id, p.send_at, p.last_error, p.last_error_code],
      )
    expect(await reservedTurns()).toBe(1)
    return { r, asks: () => asks }
  } catch (e) {
    await r.stop()
    throw e
  }
}

test('a working worker started after the refused worker gave the turns up takes rows to turns, then stops cleanly: the refused worker gives those up too, at its notification', async () => {
  const { r, asks } = await laterWorkerTookTurns(60)
  try {
    // It stops cleanly: no live worker can send. Given up within a bound (read as they stand
    // should it not come).
    const asked = asks()
    await deregisterWorker(t.db, 'working:2:abcdef')
    await pollUntil(async () => ((await reservedTurns()) === 0 ? true : undefined), 10_000).catch(
      () => undefined,
    )
    expect({
      rows: await pendingRows(),
      turns: await reservedTurns(),
      askedAgain: asks() > asked,
    }).toEqual({
      rows: [
        { code: 'AADSTS7000222', due: false, n: 1 },
        { code: 'AADSTS7000222', due: true, n: 9 },
      ],
      turns: 0,
      askedAgain: true,
    })
    // Still within the block: nothing else asked Entra or sent.
    expect(r.transport.blockedForMs()).toBeGreaterThan(0)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    await r.stop()
  }
})

test('a working worker started after the refused worker gave the turns up takes rows to turns, then is killed (its entry left): the refused worker gives those up at its next block once that entry reads dead, not when the turns come due', async () => {
  const { r, asks } = await laterWorkerTookTurns(5)
  try {
    // It is killed: no beat, no stop. Once its entry reads dead (two of its leases past its beat),
    // a new row meets the refusal again after the block's cooldown (the test's clock): the next
    // block. Given up within a bound (read as they stand should it not come).
    await pollUntil(
      async () =>
        (
          await t.pool.query(
            `select 1 from mailer.workers where id = 'working:2:abcdef'
                and last_heartbeat_at < now() - make_interval(secs => 2 * lease_seconds)`,
          )
        ).rowCount === 1
          ? true
          : undefined,
      30_000,
    )
    const asked = asks()
    r.clock.advance(61_000)
    await enqueue(t)
    r.engine.drainer.wake()
    // The new row back, refused, as well.
    await pollUntil(
      async () =>
        (await reservedTurns()) === 0 && (await count(`last_error_code = 'AADSTS7000222'`)) === 11
          ? true
          : undefined,
      10_000,
    ).catch(() => undefined)
    expect({
      rows: await pendingRows(),
      turns: await reservedTurns(),
      askedAgain: asks() > asked,
    }).toEqual({
      rows: [
        { code: 'AADSTS7000222', due: false, n: 2 },
        { code: 'AADSTS7000222', due: true, n: 9 },
      ],
      turns: 0,
      askedAgain: true,
    })
    // A block again (the new row's refusal); nothing sent.
    expect(r.transport.blockedForMs()).toBeGreaterThan(0)
    expect(r.fake.accepted).toHaveLength(1)
  } finally {
    await r.stop()
  }
})
