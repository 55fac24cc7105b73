// A mailbox paused to 'infinity' by hand, then throttled by Graph (429) on a send already under way: its rows stay put, nothing logged, each sent once when lifted.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { THROTTLED, useGraphPerTest } from '../support/graph-per-test.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const g = useGraphPerTest()
const MAIL_FROM = 'sender@example.com'
const OTHER = 'other@example.com'
const fromOther = { to: 'rcpt@example.com', from: OTHER, subject: 'Hello', text: 'Hi there' }

test("a throttle re-pausing a mailbox paused to 'infinity' moves none of its rows and logs nothing; lifted, each row is sent once", async () => {
  g.fake = await startFakeGraph({ clientSecret: 'right', mailboxes: [MAIL_FROM, OTHER] })
  // Graph throttles the first send for 300 s: past the hold, so the mailbox's waiting rows are looked at.
  g.fake.setFaults({ sendMail: [THROTTLED] })
  const lines: { level: string; msg: string }[] = []
  let paused = false
  const engine = graphWorker(t, g.fake, {
    workerId: 'w',
    mailFrom: MAIL_FROM,
    graceSeconds: 30,
    log: createLogger('warn', (l) => lines.push(JSON.parse(l))),
    // The operator's endless pause lands after the row's last check, while its request is out.
    wrapSender: (graph) => ({
      ...graph,
      send: async (mail, signal, spentMs) => {
        if (paused) return graph.send(mail, signal, spentMs)
        paused = true
        await t.pool.query(
          `insert into mailer.mailbox_pacing (mailbox, next_at) values ($1, 'infinity')
           on conflict (mailbox) do update set next_at = 'infinity'`,
          [OTHER],
        )
        return graph.send(mail, signal, spentMs)
      },
    }),
  })
  g.engines.push(engine)
  const sent = await enqueue(t, fromOther)
  const waiting = await enqueue(t, fromOther, {
    sendAt: new Date(Date.now() + 600_000).toISOString(),
  })
  const waitingAt = (await rowOf(t, waiting)).send_at.getTime()
  await engine.start()
  const back = await pollUntil(async () => {
    const r = await rowOf(t, sent)
    return r.status === 'pending' && r.last_error_code !== null ? r : undefined
  }, 20_000)
  expect(back.lease_token).toBeNull()
  const pause = await t.pool.query(
    'select isfinite(next_at) as finite from mailer.mailbox_pacing where mailbox = $1',
    [OTHER],
  )
  expect(pause.rows).toEqual([{ finite: false }])
  // The row waiting for its sendAt keeps it (no move to the pause's end).
  expect((await rowOf(t, waiting)).send_at.getTime()).toBe(waitingAt)
  // Lifted by hand, both rows due.
  await t.pool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute'
                 where mailbox = $3 returning 1)
     update mailer.email_outbox set send_at = now() where id in ($1, $2)`,
    [sent, waiting, OTHER],
  )
  engine.drainer.wake()
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox where id in ($1, $2) and status = 'sent'`,
      [sent, waiting],
    )
    return r.rows[0].n === 2 ? true : undefined
  }, 20_000)
  const accepted = g.fake.accepted.map((a) => a.outboxId).sort()
  expect(accepted).toEqual([sent, waiting].sort())
  expect(lines).toEqual([])
})
