// The drainer end to end against a real database: pickup, retries and backoff, claim failures, the last check, crash ambiguity and recovery, heartbeats, shutdown, poll-only mode.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { openDb } from '../../src/db/open.ts'
import type { Queryable } from '../../src/db/queryable.ts'
import { silentLogger } from '../../src/log.ts'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { CLAIMS_FAILING_MS } from '../../src/outbox/failing-claims-problem.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { openGate, type SendGate, type SendPermit } from '../../src/outbox/send-gate.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import {
  attemptsOf,
  createTestEngine,
  enqueue,
  rowOf,
  type TestEngine,
  testWorkerConfig,
} from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { hookedSession } from '../support/hooked-session.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

async function started(o: Parameters<typeof createTestEngine>[1] = {}) {
  engine = createTestEngine(t, o)
  await engine.start()
  return engine
}

/**
 * How long after its retry was recorded a row is due again: send_at less that attempt's
 * finished_at, one statement's now(). Measured from the test's own clock instead, it shrank by
 * however long the test took to read it.
 */
async function retryWaitMs(id: string): Promise<number> {
  const { rows } = await t.pool.query<{ ms: number }>(
    `select (extract(epoch from o.send_at - a.finished_at) * 1000)::float8 as ms
       from mailer.email_outbox o
       join mailer.email_attempts a on a.outbox_id = o.id and a.outcome = 'retry'
      where o.id = $1`,
    [id],
  )
  expect(rows).toHaveLength(1)
  return rows[0]!.ms
}

describe('the drainer', () => {
  test('a committed row is sent promptly on its notification (the backstop poll is 10 minutes)', async () => {
    const e = await started()
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'), 20_000)
    expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 1, lease_token: null })
    expect(e.sender.calls.map((m) => m.outboxId)).toEqual([id])
    expect(await attemptsOf(t, id, 'outcome, worker_id')).toEqual([
      { outcome: 'sent', worker_id: 'test-worker' },
    ])
  })

  test("each row goes out from its own sender: the message's from, the template's from_address, else MAIL_FROM", async () => {
    await t.pool.query(`
      create table if not exists public.desks (id bigint generated always as identity primary key, team text);
      insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
        values ('desk', 'Hi', 'x', array['ops@example.com'], 'Team {{team}} <{{team}}@example.com>');
      create or replace trigger d1 after insert on public.desks for each row execute function mailer.enqueue_from_row('desk');`)
    const e = await started()
    const own = await enqueue(t, {
      from: { address: 'desk@example.com', name: 'Desk' },
      to: 'r@example.com',
      subject: 'S',
      text: 'T',
    })
    const plain = await enqueue(t)
    await t.pool.query(`insert into public.desks (team) values ('sales')`)
    const templated = (
      await t.pool.query(`select id::text from mailer.email_outbox where template = 'desk'`)
    ).rows[0].id as string
    for (const id of [own, plain, templated]) await e.events.waitFor(settledFor(id, 'sent'))
    const fromOf = (id: string) => e.sender.calls.find((m) => m.outboxId === id)?.from
    expect(fromOf(own)).toEqual({ address: 'desk@example.com', name: 'Desk' })
    expect(fromOf(templated)).toEqual({ address: 'sales@example.com', name: 'Team sales' })
    expect(fromOf(plain)).toEqual({ address: 'sender@example.com' })
  })

  test('a row inserted directly with "Name <address>" recipients and sender is sent to those addresses, named', async () => {
    const e = await started()
    const { rows } = await t.pool.query(
      `insert into mailer.email_outbox (message) values ($1::jsonb) returning id::text`,
      [
        JSON.stringify({
          to: ['Ann <ann@example.com>'],
          cc: '"Doe, John" <john@example.com>',
          from: 'Orders <orders@example.com>',
          subject: 'S',
          text: 'T',
        }),
      ],
    )
    const id = rows[0].id as string
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls[0]).toMatchObject({
      to: [{ address: 'ann@example.com', name: 'Ann' }],
      cc: [{ address: 'john@example.com', name: 'Doe, John' }],
      from: { address: 'orders@example.com', name: 'Orders' },
    })
  })

  test('a 20,000-character body arrives byte-identical', async () => {
    const e = await started()
    const text = Array.from({ length: 20_000 }, (_, i) => 'aé€😀\n\t"\\'[i % 7] ?? 'x').join('')
    expect(text.length).toBe(20_000)
    const id = await enqueue(t, { to: 'r@example.com', subject: 'Big', text })
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls[0]!.text).toBe(text)
  })

  test('the backstop poll still comes after notifications have woken the worker', async () => {
    const e = await started({ config: { pollIntervalSeconds: 1 } })
    const first = await enqueue(t)
    await e.events.waitFor(settledFor(first, 'sent'), 20_000)
    // The start's sweep may have sent it before its notification was heard: counted after that,
    // a late one would wake the loop for the next row and be taken for that row's.
    await e.events.waitFor((x) => x.type === 'notification', 20_000)
    // A row whose notification never comes (as when it was lost) is found by the poll alone.
    await t.pool.query('alter table mailer.email_outbox disable trigger email_outbox_notify')
    try {
      const notified = e.events.events.filter((x) => x.type === 'notification').length
      const second = await enqueue(t)
      await e.events.waitFor(settledFor(second, 'sent'), 20_000)
      expect(e.events.events.filter((x) => x.type === 'notification').length).toBe(notified)
    } finally {
      await t.pool.query('alter table mailer.email_outbox enable trigger email_outbox_notify')
    }
  })

  test('rows present before start are swept on start', async () => {
    const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
    const e = await started()
    for (const id of ids) await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls.map((m) => m.outboxId).sort()).toEqual(ids.sort())
  })

  test('a rejection fails the row at once with the transport’s code; others keep flowing', async () => {
    const e = await started()
    // Hold sends so the script is in place before the row can be sent.
    e.sender.hold()
    const bad = await enqueue(t)
    e.sender.script.set(bad, [
      { kind: 'reject', code: 'ErrorInvalidRecipients', message: 'no such user', httpStatus: 400 },
    ])
    const good = await enqueue(t)
    e.sender.release()
    await e.events.waitFor(settledFor(bad, 'failed'))
    await e.events.waitFor(settledFor(good, 'sent'))
    expect(await rowOf(t, bad)).toMatchObject({
      status: 'failed',
      last_error_code: 'ErrorInvalidRecipients',
      attempts: 1,
    })
    expect(await attemptsOf(t, bad, 'outcome, http_status, error_code')).toEqual([
      { outcome: 'failed', http_status: 400, error_code: 'ErrorInvalidRecipients' },
    ])
  })

  test('a transient failure is retried later with backoff, keeping the error', async () => {
    const e = await started()
    e.sender.hold()
    const id = await enqueue(t)
    e.sender.script.set(id, [{ kind: 'retry', code: 'graph_503', message: 'busy' }])
    e.sender.release()
    await e.events.waitFor(settledFor(id, 'retry'))
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'pending', attempts: 1, last_error_code: 'graph_503' })
    // testWorkerConfig: base 10 s, ±25 % jitter.
    const delay = await retryWaitMs(id)
    expect(delay).toBeGreaterThanOrEqual(7_500)
    expect(delay).toBeLessThanOrEqual(12_500)
  })

  test('the backoff doubles with each attempt: the third waits about four times the first', async () => {
    const id = await enqueue(t, undefined, { maxAttempts: 5 })
    // Two attempts already made (as by earlier claims): the start's claim is the third.
    await t.pool.query('update mailer.email_outbox set attempts = 2 where id = $1', [id])
    const e = createTestEngine(t)
    engine = e
    e.sender.script.set(id, [{ kind: 'retry', code: 'graph_503', message: 'busy' }])
    await e.start()
    await e.events.waitFor(settledFor(id, 'retry'))
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'pending', attempts: 3 })
    // testWorkerConfig: base 10 s, so 40 s ±25 %.
    const delay = await retryWaitMs(id)
    expect(delay).toBeGreaterThanOrEqual(30_000)
    expect(delay).toBeLessThanOrEqual(50_000)
  })

  test('a row past its expiresAt is failed as expired and never sent', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    })
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    const e = await started()
    await e.events.waitFor(settledFor(id, 'expired'))
    expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'expired' })
    expect(e.sender.calls).toEqual([])
  })

  test('a row cancelled after being claimed is not sent', async () => {
    const e = createTestEngine(t)
    engine = e
    const id = await enqueue(t)
    // Claimed but the cancel lands before the last check: what the API does for a sending row.
    const { claimBatch } = await import('../../src/outbox/claim.ts')
    const { startSends } = await import('../../src/outbox/start-send.ts')
    const {
      leases: [lease],
    } = await claimBatch(t.db, {
      limit: 1,
      workerId: 'x',
      leaseSeconds: 30,
      defaultMaxAttempts: 3,
    })
    await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
      id,
    ])
    const r = await startSends(t.db, [lease!])
    expect([...r.cancelled]).toEqual([id])
    expect(r.started.size).toBe(0)
    // And through the drainer: a cancel recorded before the claim is honoured too.
    const id2 = await enqueue(t)
    await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
      id2,
    ])
    await e.start()
    await e.events.waitFor(settledFor(id2, 'cancelled'))
    expect(await rowOf(t, id2)).toMatchObject({ status: 'cancelled' })
    expect(e.sender.calls).toEqual([])
  })

  test('a scheduled send_at fires on time without polling', async () => {
    const e = await started()
    const sendAt = new Date(Date.now() + 1500)
    const id = await enqueue(t, undefined, { sendAt: sendAt.toISOString() })
    await e.events.waitFor(settledFor(id, 'sent'), 20_000)
    const row = await rowOf(t, id)
    expect(row.sent_at.getTime()).toBeGreaterThanOrEqual(sendAt.getTime())
  })

  test('after pg_terminate_backend on the LISTEN session, a new row is still delivered promptly', async () => {
    const e = await started()
    const pid = e.listener.backendPid()
    expect(pid).not.toBeNull()
    await t.pool.query('select pg_terminate_backend($1)', [pid])
    await e.events.waitFor((x) => x.type === 'listener' && x.state === 'reconnecting')
    await pollUntil(async () =>
      e.listener.state() === 'listening' && e.listener.backendPid() !== pid ? true : undefined,
    )
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'), 20_000)
    // One listener session is left, the new one: the terminated backend stays in pg_stat_activity
    // for a while as it exits (the new session's probe session names itself apart).
    const listeners = async () =>
      (
        await t.pool.query<{ pid: number }>(
          `select pid from pg_stat_activity where application_name = 'outbox-mailer:listener' and datname = current_database()`,
        )
      ).rows.map((r) => r.pid)
    const now = e.listener.backendPid()
    await pollUntil(async () => ((await listeners()).length === 1 ? true : undefined)).catch(
      () => {},
    )
    expect(await listeners()).toEqual([now!])
  })

  test('a LISTEN session lost before its check is reconnected, not taken for a pooler (polling for good)', async () => {
    const h = openDb({ name: 'cut', url: t.url, log: silentLogger, shareListenSession: true })
    let cut = 0
    // The first session's connection goes between its LISTEN and the check that follows it.
    const session = hookedSession(h.listenSession!, async ({ client, text, run }) => {
      if (cut === 0 && text.includes('pg_listening_channels')) {
        cut += 1
        const pid = (client as unknown as { processID: number }).processID
        await t.pool.query('select pg_terminate_backend($1)', [pid])
      }
      return run()
    })
    try {
      const e = await started({ handle: { ...h, listenSession: session } })
      expect(cut).toBe(1)
      expect(e.listener.state()).toBe('listening')
      const id = await enqueue(t)
      await e.events.waitFor(settledFor(id, 'sent'), 20_000)
      await e.stop()
      engine = null
    } finally {
      await h.close()
    }
  })

  test('a session whose check another server session answers (a transaction pooler) falls back to polling', async () => {
    const h = openDb({ name: 'pooled', url: t.url, log: silentLogger, shareListenSession: true })
    // As behind a pooler: the check lands on a server session that never ran the LISTEN.
    const session = hookedSession(h.listenSession!, ({ text, values, run }) =>
      text.includes('pg_listening_channels') ? t.pool.query(text, values) : run(),
    )
    try {
      const e = createTestEngine(t, {
        handle: { ...h, listenSession: session },
        config: { pollIntervalSeconds: 1 },
      })
      engine = e
      e.listener.start()
      e.drainer.start()
      await e.events.waitFor((x) => x.type === 'listener' && x.state === 'polling')
      const id = await enqueue(t)
      await e.events.waitFor(settledFor(id, 'sent'), 20_000)
      expect(e.listener.state()).toBe('polling')
      await e.stop()
      engine = null
    } finally {
      await h.close()
    }
  })

  test('rows inserted while the listener was down are swept on reconnect', async () => {
    const e = await started()
    const pid = e.listener.backendPid()
    await t.pool.query('select pg_terminate_backend($1)', [pid])
    await e.events.waitFor((x) => x.type === 'listener' && x.state === 'reconnecting')
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'), 20_000)
  })

  test('a template that fails to render fails its row with a clear code; the rest still send', async () => {
    await t.pool.query(`
      create table if not exists public.signups (id bigint generated always as identity primary key, email text);
      insert into mailer.templates (name, subject, text_body, html_body, to_addresses)
        values ('welcome', 'Welcome {{email}}', 'Hi {{email}}', '<b>{{email}}</b>', array['{{email}}']),
               ('broken', 'Hi {{emali}}', 'x', null, array['ops@example.com']);
      create or replace trigger s1 after insert on public.signups for each row execute function mailer.enqueue_from_row('welcome');
      create or replace trigger s2 after insert on public.signups for each row execute function mailer.enqueue_from_row('broken');`)
    const e = await started()
    await t.pool.query(
      `insert into public.signups (email) values ('x<y>@example.com'), ('amy@example.com')`,
    )
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox where status in ('sent', 'failed')`,
      )
      return r.rows[0].n === 4 ? true : undefined
    })
    const rows = await t.pool.query(
      `select template, status, last_error_code, source_row->>'email' as email from mailer.email_outbox order by id`,
    )
    expect(
      rows.rows
        .filter((r) => r.template === 'broken')
        .every((r) => r.status === 'failed' && r.last_error_code === 'template_error'),
    ).toBe(true)
    // 'x<y>@example.com' is not an address: rendering it into to_addresses fails that row only.
    expect(
      rows.rows.find((r) => r.template === 'welcome' && r.email === 'x<y>@example.com'),
    ).toMatchObject({ status: 'failed', last_error_code: 'template_error' })
    const amy = e.sender.calls.find((m) => m.to[0]?.address === 'amy@example.com')
    expect(amy).toMatchObject({
      subject: 'Welcome amy@example.com',
      text: 'Hi amy@example.com',
      html: '<b>amy@example.com</b>',
    })
  })

  test('a template edited, renamed or deleted after rows were queued: rendered as it stands at send, a missing one failing its rows template_not_found', async () => {
    await t.pool.query(`
      create table if not exists public.signups (id bigint generated always as identity primary key, email text);
      insert into mailer.templates (name, subject, text_body, to_addresses)
        values ('welcome', 'Welcome {{email}}', 'Hi', array['{{email}}']),
               ('renamed', 'Hi {{email}}', 'x', array['{{email}}']),
               ('deleted', 'Hi {{email}}', 'x', array['{{email}}']);
      create or replace trigger s1 after insert on public.signups for each row execute function mailer.enqueue_from_row('welcome');
      create or replace trigger s2 after insert on public.signups for each row execute function mailer.enqueue_from_row('renamed');
      create or replace trigger s3 after insert on public.signups for each row execute function mailer.enqueue_from_row('deleted');
      insert into public.signups (email) values ('amy@example.com');
      update mailer.templates set subject = 'Welcome aboard, {{email}}' where name = 'welcome';
      update mailer.templates set name = 'renamed_later' where name = 'renamed';
      delete from mailer.templates where name = 'deleted';`)
    const e = await started()
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox where status in ('sent', 'failed')`,
      )
      return r.rows[0].n === 3 ? true : undefined
    })
    const { rows } = await t.pool.query(
      'select template, status, attempts, last_error_code, last_error from mailer.email_outbox order by id',
    )
    expect(rows).toEqual([
      { template: 'welcome', status: 'sent', attempts: 1, last_error_code: null, last_error: null },
      {
        template: 'renamed',
        status: 'failed',
        attempts: 1,
        last_error_code: 'template_not_found',
        last_error: 'template "renamed" no longer exists',
      },
      {
        template: 'deleted',
        status: 'failed',
        attempts: 1,
        last_error_code: 'template_not_found',
        last_error: 'template "deleted" no longer exists',
      },
    ])
    expect(e.sender.calls.map((m) => m.subject)).toEqual(['Welcome aboard, amy@example.com'])
  })

  test("a source row's numbers render as Postgres wrote them: 12.50 stays 12.50, a bigint past 2^53 keeps its digits", async () => {
    await t.pool.query(`
      create table if not exists public.orders (id bigint generated always as identity primary key,
        email text, total numeric(10, 2), shipping numeric(10, 2), ref bigint, items jsonb);
      insert into mailer.templates (name, subject, text_body, html_body, to_addresses)
        values ('order', 'Order {{ref}}: {{total}}',
                'Total {{total}}, shipping {{^shipping}}free{{/shipping}}{{#shipping}}{{.}}{{/shipping}}; {{#items}}{{sku}} at {{price}}; {{/items}}{{items}}',
                '<p>{{total}}</p>', array['{{email}}']);
      create or replace trigger o1 after insert on public.orders for each row execute function mailer.enqueue_from_row('order');`)
    const e = await started()
    await t.pool.query(`
      insert into public.orders (email, total, shipping, ref, items) values
        ('a@example.com', 12.50, 0, 9007199254740993, '[{"sku": "A", "price": 10.00}, {"sku": "B", "price": 0.10}]'),
        ('b@example.com', 7, 4.9, 1, '[]')`)
    await pollUntil(async () => (e.sender.calls.length === 2 ? true : undefined))
    const of = (to: string) => e.sender.calls.find((m) => m.to[0]?.address === to)
    expect(of('a@example.com')).toMatchObject({
      subject: 'Order 9007199254740993: 12.50',
      text: 'Total 12.50, shipping free; A at 10.00; B at 0.10; [{"sku":"A","price":10.00},{"sku":"B","price":0.10}]',
      html: '<p>12.50</p>',
    })
    expect(of('b@example.com')).toMatchObject({
      subject: 'Order 1: 7.00',
      text: 'Total 7.00, shipping 4.90; ',
    })
  })
})

describe('claims that keep failing', () => {
  test('claims failing on a read-only database make the worker unready after 30 s, naming the SQLSTATE, where the probe does not see it read-only; where it does, at once', async () => {
    // The worker's own connections open read-only, as on a standby; the probes below run on the
    // test's read-write pool (a cause a probe cannot see), but the last.
    const url = new URL(t.url)
    url.searchParams.set('options', '-c default_transaction_read_only=on')
    const readOnly = openDb({ name: 'ro', url: url.toString(), log: silentLogger })
    try {
      const e = await started({ handle: readOnly })
      await enqueue(t)
      await e.events.waitFor((x) => x.type === 'loop_error' && x.where === 'claim')
      const failing = e.drainer.status().claimsFailing
      expect(failing).toMatchObject({ sqlstate: '25006' })
      // The drainer's own record, its ages as 30 s of failing would have made them.
      type Failing = NonNullable<typeof failing>
      const monitorOf = (claims: Failing, probeOn: Queryable = t.pool) =>
        createHealthMonitor({
          databases: [
            {
              name: 'ro',
              statements: probeOn,
              drainer: {
                ...e.drainer,
                status: () => ({ ...e.drainer.status(), claimsFailing: claims }),
              },
              listener: null,
            },
          ],
          schemaCurrent: ['ro'],
          // Its `select 1` answered on a starved machine, not within the 2 s default: the test is
          // about the claims' record, not the probe's bound (health.test.ts keeps that).
          probeTimeoutMs: 20_000,
          wedgedAfterMs: 120_000,
        })
      const f = failing!
      const [early] = await monitorOf({
        ...f,
        forMs: CLAIMS_FAILING_MS - 1_000,
        lastAgoMs: 0,
      }).readiness()
      expect(early).toMatchObject({ reachable: true, worker: 'running', problem: null })
      const failingLong = { ...f, forMs: CLAIMS_FAILING_MS + 5_000, lastAgoMs: 1_000 }
      const [late] = await monitorOf(failingLong).readiness()
      expect(late!.problem).toBe('claims have failed for 35s (SQLSTATE 25006); see the logs')
      // A loop that stopped claiming after its failures (its queue full, sends blocked) is not
      // failing now: an old failure alone does not make it unready.
      const [stale] = await monitorOf({
        ...failingLong,
        forMs: CLAIMS_FAILING_MS + 24_000,
        lastAgoMs: 20_000,
        retrying: false,
      }).readiness()
      expect(stale!.problem).toBeNull()
      // A probe on the worker's own (read-only) connections says why at once, before the 30 s.
      const [readOnlyProbe] = await monitorOf(
        { ...f, forMs: 1_000, lastAgoMs: 0 },
        readOnly.statements,
      ).readiness()
      expect(readOnlyProbe!.problem).toStartWith('the database refuses writes (read-only: ')
      // Still failing: the first failure's time is kept, not each retry's.
      const claimErrors = () =>
        e.events.events.filter((x) => x.type === 'loop_error' && x.where === 'claim').length
      await pollUntil(async () => (claimErrors() >= 2 ? true : undefined))
      expect(e.drainer.status().claimsFailing?.since).toBe(failing!.since)
      await e.stop()
      engine = null
    } finally {
      await readOnly.close()
    }
  })

  test('while no send can succeed (a refused credential) nothing is claimed; when that ends, rows go', async () => {
    let blockedMs = 60_000
    let askedAfterEnqueue = 0
    let enqueued = false
    const e = await started({
      deps: {
        sendBlockedForMs: () => {
          if (enqueued) askedAfterEnqueue++
          return blockedMs
        },
      },
    })
    enqueued = true
    const id = await enqueue(t)
    // The notification's wake made the loop ask, and it claimed nothing.
    await pollUntil(async () => (askedAfterEnqueue > 0 ? true : undefined))
    expect(await rowOf(t, id)).toMatchObject({ status: 'pending', attempts: 0 })
    expect(e.events.events.filter((x) => x.type === 'claimed')).toEqual([])
    blockedMs = 0
    e.drainer.wake()
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 1 })
  })

  test('claims that succeed report no failure', async () => {
    const e = await started()
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.drainer.status().claimsFailing).toBeNull()
  })
})

// A closed gate (as Graph's) whose permits the test hands out, first come first served.
function manualGate() {
  const waiting: ((p: SendPermit | { pausedForMs: number } | null) => void)[] = []
  const gate: SendGate = {
    open: false,
    acquire: (_mailbox, signal) =>
      new Promise((resolve) => {
        waiting.push(resolve)
        signal.addEventListener('abort', () => resolve(null), { once: true })
      }),
    pause: async () => {},
  }
  const grant = () => waiting.shift()?.({ release: async () => {} })
  // The mailbox stands paused longer than a row holds its place: the row goes back.
  const paused = (ms: number) => waiting.shift()?.({ pausedForMs: ms })
  return { gate, waiting: () => waiting.length, grant, paused }
}

/**
 * The claim statement, counting those in flight. A test moves the engine's clocks only while none
 * is: a claim sent before the move and answered after it, with a row a reclaim freed meanwhile,
 * rightly counts that lease from its sending, before the (simulated) lease length passed, and so
 * finds it lost at its start: a second lease_lost the test did not stage.
 */
function countedClaims() {
  let inFlight = 0
  const claim: typeof claimBatch = async (db, p) => {
    inFlight++
    try {
      return await claimBatch(db, p)
    } finally {
      inFlight--
    }
  }
  /** Runs `move` once no claim is in flight, in the same turn as that check. */
  const whenIdle = (move: () => void) =>
    pollUntil(async () => {
      if (inFlight > 0) return undefined
      move()
      return true
    })
  return { claim, whenIdle }
}

describe('the last check before a send (a closed gate: claimed, then waiting for a permit)', () => {
  test('a row cancelled while it waits (the API answers 202) is cancelled by its worker, never sent', async () => {
    const g = manualGate()
    const e = await started({ deps: { gate: g.gate } })
    const id = await enqueue(t)
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    expect(await cancelOutboxRow(t.db, id, null)).toMatchObject({ status: 'sending' })
    g.grant()
    await e.events.waitFor(settledFor(id, 'cancelled'))
    expect(await rowOf(t, id)).toMatchObject({ status: 'cancelled', send_started_at: null })
    expect(e.sender.calls).toEqual([])
  })

  test('a row whose expiresAt passes while it waits is failed as expired and never sent', async () => {
    const g = manualGate()
    const e = await started({ deps: { gate: g.gate } })
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    })
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    expect(await rowOf(t, id)).toMatchObject({ status: 'sending', send_started_at: null })
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds' where id = $1`,
      [id],
    )
    g.grant()
    await e.events.waitFor(settledFor(id, 'expired'))
    expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'expired' })
    expect(e.sender.calls).toEqual([])
  })
})

describe('a row lost to reclaim and claimed again by the same worker', () => {
  test('a row a reclaim fails (out of attempts) is reported as failed, with code lease_expired', async () => {
    const id = await enqueue(t)
    // Its worker died holding its last attempt: the first reclaim ends it.
    await t.pool.query(
      `update mailer.email_outbox
          set status = 'sending', attempts = 1, max_attempts = 1, lease_owner = 'dead-worker',
              lease_token = gen_random_uuid(), lease_expires_at = now() - interval '1 second'
        where id = $1`,
      [id],
    )
    const e = await started()
    expect(await e.events.waitFor(settledFor(id, 'failed'))).toMatchObject({
      code: 'lease_expired',
    })
    expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'lease_expired' })
    expect(e.sender.calls).toEqual([])
  })

  test('a row a reclaim cancels (its cancel recorded before the worker died) is reported as cancelled', async () => {
    const id = await enqueue(t)
    await t.pool.query(
      `update mailer.email_outbox
          set status = 'sending', attempts = 1, lease_owner = 'dead-worker', cancel_requested_at = now(),
              lease_token = gen_random_uuid(), lease_expires_at = now() - interval '1 second'
        where id = $1`,
      [id],
    )
    const e = await started()
    await e.events.waitFor(settledFor(id, 'cancelled'))
    expect(await rowOf(t, id)).toMatchObject({ status: 'cancelled' })
    expect(e.sender.calls).toEqual([])
  })

  test('the stale lease ending keeps the live one held (heartbeated) and it is sent once', async () => {
    const g = manualGate()
    const e = await started({ deps: { gate: g.gate } })
    const id = await enqueue(t)
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    // Heartbeats stopped long enough (a database blip): the lease expired and was reclaimed.
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [id],
    )
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 5 })).rows).toHaveLength(1)
    e.drainer.wake()
    await pollUntil(async () => (g.waiting() === 2 ? true : undefined))
    const live = (await rowOf(t, id)).lease_token

    g.grant() // the stale lease's permit: its last check finds the lease lost
    await e.events.waitFor((x) => x.type === 'lease_lost' && x.id === id && x.during === 'start')
    expect(e.drainer.status().inFlight).toBe(1)
    expect((await rowOf(t, id)).lease_token).toBe(live)

    g.grant()
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls.map((m) => m.outboxId)).toEqual([id])
    expect(e.drainer.status().inFlight).toBe(0)
    expect(await attemptsOf(t, id, 'attempt, outcome')).toEqual([
      { attempt: 1, outcome: 'lease_expired' },
      { attempt: 2, outcome: 'sent' },
    ])
  })

  test('a lease that ended unreclaimed while the row waited for its permit is not started', async () => {
    let skew = 0
    const clock = { now: () => Date.now() + skew, sleep: systemClock.sleep }
    const g = manualGate()
    const e = await started({ deps: { gate: g.gate, clock } })
    const id = await enqueue(t)
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    // Heartbeats failed past the lease; no reclaim has run yet. Started now, the row would be
    // reclaimed mid-send as ambiguous and sent again.
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [id],
    )
    skew = testWorkerConfig.leaseSeconds * 1000 + 1_000
    g.grant()
    await e.events.waitFor((x) => x.type === 'lease_lost' && x.id === id && x.during === 'start')
    expect(e.sender.calls).toHaveLength(0)
    // Handed back unstarted (no ambiguity) and claimed again at once.
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    expect(await rowOf(t, id)).toMatchObject({ status: 'sending', send_started_at: null })
    g.grant()
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls.map((m) => m.outboxId)).toEqual([id])
    expect((await attemptsOf(t, id, 'outcome')).map((r) => r.outcome)).toEqual(['released', 'sent'])
  })
  test('one that ended unreclaimed where only the database saw it end is refused by the last check: handed back uncounted, sent once', async () => {
    const g = manualGate()
    const e = await started({ deps: { gate: g.gate } })
    const id = await enqueue(t)
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    // The lease ended in database time while this process still counts it as held (a pause of the
    // process, a start statement queued behind a slow one): the database is the authority.
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [id],
    )
    g.grant()
    await e.events.waitFor((x) => x.type === 'lease_lost' && x.id === id && x.during === 'start')
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    expect(e.sender.calls).toHaveLength(0)
    expect(await rowOf(t, id)).toMatchObject({
      status: 'sending',
      attempts: 1,
      send_started_at: null,
    })
    g.grant()
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls.map((m) => m.outboxId)).toEqual([id])
    expect(e.events.events.filter((x) => x.type === 'lease_lost' && x.id === id)).toHaveLength(1)
    expect(await attemptsOf(t, id, 'attempt, outcome')).toEqual([
      { attempt: 1, outcome: 'released' },
      { attempt: 1, outcome: 'sent' },
    ])
  })

  test('a lease a heartbeat found lost while its row waited is counted once, also when the row then goes back as mailbox_paused', async () => {
    const g = manualGate()
    const e = await started({ deps: { gate: g.gate }, config: { heartbeatSeconds: 0.1 } })
    const id = await enqueue(t)
    await pollUntil(async () => (g.waiting() === 1 ? true : undefined))
    // Another worker holds the row now (this one's lease expired and was reclaimed and claimed).
    await t.pool.query(
      `update mailer.email_outbox set lease_owner = 'w2', lease_token = gen_random_uuid() where id = $1`,
      [id],
    )
    await e.events.waitFor(
      (x) => x.type === 'lease_lost' && x.id === id && x.during === 'heartbeat',
    )
    g.paused(60_000)
    await pollUntil(async () => (e.drainer.status().inFlight === 0 ? true : undefined))
    expect(e.events.events.filter((x) => x.type === 'lease_lost' && x.id === id)).toHaveLength(1)
    expect(e.sender.calls).toEqual([])
  })
})

describe('rows the claim recorded as started (open gate), waiting for a send slot', () => {
  test('one whose lease ended meanwhile (reclaimed elsewhere) is not sent by the stale holder', async () => {
    let skew = 0
    const clock = { now: () => Date.now() + skew, sleep: systemClock.sleep }
    const first = await enqueue(t)
    const second = await enqueue(t)
    const sender = createFakeSender()
    sender.hold()
    const claims = countedClaims()
    const e = await started({
      config: { concurrency: 1 },
      deps: { clock, sender, claim: claims.claim },
    })
    // One slot: the first row is in its send, the second (started by the same claim) waits.
    await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))
    const waiting = sender.calls[0]!.outboxId === first ? second : first
    // Heartbeats failed for longer than the lease (an outage): it expired, another worker reclaimed it.
    // The clock moves first, between claims: a claim of the reclaimed row sent before it moved
    // (the listener's first sweep, say) would look lost too.
    await claims.whenIdle(() => {
      skew = testWorkerConfig.leaseSeconds * 1000 + 1_000
    })
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [waiting],
    )
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 5 })).rows).toHaveLength(1)
    sender.release()
    await e.events.waitFor(
      (x) => x.type === 'lease_lost' && x.id === waiting && x.during === 'start',
    )
    e.drainer.wake()
    await e.events.waitFor(settledFor(waiting, 'sent'))
    // Sent once, by the claim that holds it, not also by the stale one.
    expect(sender.calls.filter((m) => m.outboxId === waiting)).toHaveLength(1)
    expect((await rowOf(t, waiting)).attempts).toBe(2)
  })

  test('nor when the wall clock was stepped back meanwhile (an NTP step): the lease ends on the monotonic clock', async () => {
    let wallStep = 0
    let elapsed = 0
    const clock = {
      now: () => Date.now() + wallStep,
      monotonic: () => performance.now() + elapsed,
      sleep: systemClock.sleep,
    }
    const first = await enqueue(t)
    const second = await enqueue(t)
    const sender = createFakeSender()
    sender.hold()
    const claims = countedClaims()
    const e = await started({
      config: { concurrency: 1 },
      deps: { clock, sender, claim: claims.claim },
    })
    await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))
    const waiting = sender.calls[0]!.outboxId === first ? second : first
    // An outage longer than the lease: a lease length passed, and the wall clock was stepped back
    // an hour (first, between claims: a claim of the reclaimed row sent before the clocks moved
    // would look lost too) ...
    await claims.whenIdle(() => {
      elapsed = testWorkerConfig.leaseSeconds * 1000 + 1_000
      wallStep = elapsed - 3_600_000
    })
    // ... meanwhile the lease expired, and another worker reclaimed it.
    await t.pool.query(
      `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
      [waiting],
    )
    expect((await reclaimExpired(t.db, { defaultMaxAttempts: 5 })).rows).toHaveLength(1)
    sender.release()
    e.drainer.wake()
    await e.events.waitFor(settledFor(waiting, 'sent'))
    expect(sender.calls.filter((m) => m.outboxId === waiting)).toHaveLength(1)
    expect(
      e.events.events.flatMap((x) =>
        x.type === 'lease_lost' && x.id === waiting ? [x.during] : [],
      ),
    ).toEqual(['start'])
  })

  test('a wall clock stepped back while the claim runs leaves its leases held: the rows are sent, none given back as lost', async () => {
    let wallStep = 0
    const clock = {
      now: () => Date.now() + wallStep,
      monotonic: () => performance.now(),
      sleep: systemClock.sleep,
    }
    // The step (an NTP step, a VM resumed) lands between the claim's statement and its answer.
    const claim: typeof claimBatch = async (db, p) => {
      const r = await claimBatch(db, p)
      if (r.leases.length > 0) wallStep -= 3_600_000
      return r
    }
    const id = await enqueue(t)
    const e = await started({ deps: { clock, claim } })
    await e.events.waitFor((x) => settledFor(id)(x) || x.type === 'lease_lost')
    expect(e.events.events.filter((x) => x.type === 'lease_lost')).toEqual([])
    await e.events.waitFor(settledFor(id))
    expect(e.sender.calls.map((m) => m.outboxId)).toEqual([id])
    expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 1 })
  })
})

describe('rows of an open gate (file, discard) waiting in the local queue for a send slot', () => {
  test('one whose expiresAt passes while it waits is failed as expired and never sent, also one with an interrupted send', async () => {
    const blocker = await enqueue(t)
    const inOneHour = { expiresAt: new Date(Date.now() + 3600_000).toISOString() }
    const expiring = await enqueue(t, undefined, inOneHour)
    const interrupted = await enqueue(t, undefined, inOneHour)
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = $1`,
      [interrupted],
    )
    const sender = createFakeSender()
    sender.hold()
    // One slot: the first row is in its send, the others (claimed with it) wait for the slot.
    const e = await started({ config: { concurrency: 1 }, deps: { sender } })
    await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))
    expect(sender.calls.map((m) => m.outboxId)).toEqual([blocker])
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second',
              send_at = now() - interval '2 seconds' where id = any($1::bigint[])`,
      [[expiring, interrupted]],
    )
    sender.release()
    // The blocker's settlement is written apart from theirs (the settle queue, as a send's): it may
    // come after them, and is waited for too.
    for (const id of [expiring, interrupted, blocker]) await e.events.waitFor(settledFor(id))
    const outcomes = e.events.events.flatMap((x) =>
      x.type === 'settled' ? [[x.id, x.outcome, x.code ?? null]] : [],
    )
    expect(outcomes.sort()).toEqual(
      [
        [blocker, 'sent', null],
        [expiring, 'expired', 'expired'],
        [interrupted, 'expired', 'expired'],
      ].sort(),
    )
    expect(sender.calls.map((m) => m.outboxId)).toEqual([blocker])
  })
})

describe('claims per drain', () => {
  test('a drain ends with one empty claim: sends handed over while it runs do not ask for another', async () => {
    const got: number[] = []
    let calls = (): number => 0
    let heard: () => Promise<unknown> = async () => {}
    // No claim's statement runs while the rows are inserted: one whose transaction began before
    // the insert's and that reads after its commit finds them not due yet by its own now(), and
    // arms the due timer for them, a wake from outside that may claim once more after the drain's
    // empty claim (claim_batch's nextDueMs). A claim asked for meanwhile waits for the commit.
    let inserted: Promise<void> = Promise.resolve()
    let inFlight = 0
    const claim: typeof claimBatch = async (db, p) => {
      await inserted
      inFlight++
      const r = await claimBatch(db, p).finally(() => inFlight--)
      // The claim that takes the rows returns only once their notification has been heard. A claim
      // woken otherwise (the listener's sweep at start) may take them first, and a notification
      // heard after that, during the next claim, is news that claim cannot rule out: the drainer
      // rightly claims once more (nothing lost), which is not what this test is about.
      if (r.leases.length === 50) await heard()
      // The claim that finds the drained queue empty returns only after the other rows' sends have
      // begun (each a wake for room in the local queue), as sends overlap claims in a real drain.
      if (r.leases.length === 0 && got.includes(50)) {
        await pollUntil(async () => (calls() === 50 ? true : undefined))
      }
      got.push(r.leases.length)
      return r
    }
    // Concurrency 1 with an open gate: claims of 50, the next one when 25 are left unsent.
    const e = await started({ config: { concurrency: 1 }, deps: { claim } })
    calls = () => e.sender.calls.length
    heard = () => e.events.waitFor((x) => x.type === 'notification')
    // Bounded and named: it spans a 10 s poll and the insert.
    const committed = boundedLatches(20_000).make('the 50 rows’ insert committed')
    inserted = committed.wait()
    try {
      await pollUntil(async () => (inFlight === 0 ? true : undefined))
      // 50 rows in one transaction: one notification, as the benchmark's drain inserts its rows.
      await t.pool.query(
        `insert into mailer.email_outbox (message)
         select jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi')
           from generate_series(1, 50)`,
      )
    } finally {
      // Also when the insert fails: a claim left waiting would hold the engine's stop.
      committed.resolve()
    }
    const left = async () =>
      (
        await t.pool.query(
          `select count(*)::int as n from mailer.email_outbox where status <> 'sent'`,
        )
      ).rows[0].n as number
    // The empty claim's answer is recorded after it returns, which may be after the last row is
    // sent: wait for both (bounded), then there must be exactly that one claim after the 50.
    await pollUntil(async () =>
      (await left()) === 0 && got.indexOf(50) >= 0 && got.length > got.indexOf(50) + 1
        ? true
        : undefined,
    )
    expect(got.slice(got.indexOf(50))).toEqual([50, 0])
  })
})

describe('a claim too large for one statement', () => {
  test('after Postgres refuses a claim as too large (54000), rows are claimed one at a time and go', async () => {
    const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
    const limits: number[] = []
    // As Postgres answers a claim whose JSON passes 1 GB: only a real gigabyte would make it do so.
    const claim: typeof claimBatch = async (db, p) => {
      limits.push(p.limit)
      if (p.limit > 1) {
        throw Object.assign(new Error('total size of jsonb array elements exceeds the maximum'), {
          code: '54000',
        })
      }
      return claimBatch(db, p)
    }
    const e = await started({ deps: { claim } })
    for (const id of ids) await e.events.waitFor(settledFor(id, 'sent'))
    expect(limits[0]).toBeGreaterThan(1)
    expect(limits.slice(1, 4)).toEqual([1, 1, 1])
    expect(e.drainer.status().claimsFailing).toBeNull()
  })
})

describe('crash ambiguity', () => {
  async function ambiguousRow() {
    const id = await enqueue(t)
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = $1`,
      [id],
    )
    return id
  }

  /** Each row's end, in id order: its status, last_error and whether it keeps an interrupted send's mark. */
  async function endings() {
    const { rows } = await t.pool.query(
      `select id::text, status, last_error, send_started_at is not null as marked
         from mailer.email_outbox order by id`,
    )
    return rows
  }
  /** The last errors of unverified resends out of attempts: answered for sure (a 500), and interrupted too. */
  const RESENT_ANSWERED =
    'Internal Server Error (an earlier interrupted send may have delivered it)'
  const RESENT_UNANSWERED =
    'Graph request exceeded its deadline (that send, or an earlier interrupted one, may have delivered it)'
  /** The end of row `id` failed out of attempts, its last error `lastError`, its mark kept. */
  const exhaustedMarked = (id: string, lastError: string) => ({
    id,
    status: 'failed',
    last_error: `attempts exhausted; last error: ${lastError}`,
    marked: true,
  })

  test('found in the mailbox: marked sent without sending again', async () => {
    const id = await ambiguousRow()
    const e = await started({ deps: { lookup: async () => 'found' } })
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls).toEqual([])
  })

  test('not found: sent', async () => {
    const id = await ambiguousRow()
    const e = await started({ deps: { lookup: async () => 'not_found' } })
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(e.sender.calls.length).toBe(1)
  })

  test('a lookup that fails: not sent, asked again later, uncounted and still marked', async () => {
    const id = await ambiguousRow()
    const e = await started({
      deps: {
        lookup: async () => {
          throw new Error('Graph answered 503 to the lookup')
        },
      },
    })
    await e.events.waitFor(settledFor(id))
    expect(e.sender.calls).toEqual([])
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'pending', attempts: 0, last_error_code: 'lookup_failed' })
    expect(row.send_started_at).not.toBeNull()
  })

  test('a lookup refused because the sender mailbox does not exist: failed at once with its code, as the send would be, not asked again for a day', async () => {
    const id = await ambiguousRow()
    const e = await started({
      deps: {
        lookup: async () => ({
          rejected: {
            code: 'ErrorInvalidUser',
            message: "The requested user '[address]' is invalid.",
            httpStatus: 404,
            requestId: 'req-404',
          },
        }),
      },
    })
    await e.events.waitFor(settledFor(id))
    expect(e.sender.calls).toEqual([])
    const row = await rowOf(t, id)
    // The interrupted send is still unresolved, and the words say it may have delivered the row,
    // as every other ending of such a row does: retried once the mailbox exists, it is looked up first.
    const REFUSED =
      "the mailbox lookup of an interrupted send was refused: The requested user '[address]' is invalid. (that send may have delivered it)"
    expect(row).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error_code: 'ErrorInvalidUser',
      last_error: REFUSED,
    })
    expect(row.send_started_at).not.toBeNull()
    expect(await attemptsOf(t, id, 'outcome, error_code, http_status, request_id, error')).toEqual([
      {
        outcome: 'failed',
        error_code: 'ErrorInvalidUser',
        http_status: 404,
        request_id: 'req-404',
        error: REFUSED,
      },
    ])
  })

  test('a throttled lookup: the mailbox paused for every worker, the row asked again after the Retry-After, uncounted', async () => {
    const id = await ambiguousRow()
    const pauses: [string, number][] = []
    const e = await started({
      deps: {
        lookup: async () => ({ throttledForMs: 120_000 }),
        gate: { ...openGate, pause: async (mailbox, ms) => void pauses.push([mailbox, ms]) },
      },
    })
    await e.events.waitFor(settledFor(id))
    expect(e.sender.calls).toEqual([])
    expect(pauses).toEqual([['sender@example.com', 120_000]])
    const row = await t.pool.query(
      `select status, attempts, last_error_code, send_started_at is not null as marked,
              send_at > now() + interval '100 seconds' as later
         from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(row.rows[0]).toEqual({
      status: 'pending',
      attempts: 0,
      last_error_code: 'lookup_failed',
      marked: true,
      later: true,
    })
  })

  test('a lookup refused because MAIL_FROM is not a mailbox: paused like a throttle, the row waits uncounted with Graph’s code, not lookup_failed', async () => {
    const id = await ambiguousRow()
    const pauses: [string, number][] = []
    const e = await started({
      deps: {
        lookup: async () => ({
          throttledForMs: 300_000,
          refused: {
            code: 'ErrorInvalidUser',
            message: "The requested user '[address]' is invalid.",
            httpStatus: 404,
            requestId: 'req-404',
          },
        }),
        gate: { ...openGate, pause: async (mailbox, ms) => void pauses.push([mailbox, ms]) },
      },
    })
    await e.events.waitFor(settledFor(id))
    expect(e.sender.calls).toEqual([])
    expect(pauses).toEqual([['sender@example.com', 300_000]])
    const row = await t.pool.query(
      `select status, attempts, last_error_code, send_started_at is not null as marked
         from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(row.rows[0]).toEqual({
      status: 'pending',
      attempts: 0,
      last_error_code: 'ErrorInvalidUser',
      marked: true,
    })
    expect(await attemptsOf(t, id, 'outcome, error_code, http_status, request_id')).toEqual([
      {
        outcome: 'throttled',
        error_code: 'ErrorInvalidUser',
        http_status: 404,
        request_id: 'req-404',
      },
    ])
  })

  test('resent unverified (no lookup, policy resend), a send that fails for sure and would retry after expiresAt says the interrupted one may have delivered it', async () => {
    const id = await enqueue(t, undefined, {
      expiresAt: new Date(Date.now() + 30_000).toISOString(),
    })
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = $1`,
      [id],
    )
    // The resend is refused for sure (500): it delivered nothing, but the interrupted send is unknown.
    const sender = createFakeSender()
    sender.script.set(id, [
      { kind: 'retry', code: 'http_500', message: 'scripted', afterMs: 60_000 },
    ])
    const e = await started({ deps: { sender } })
    await e.events.waitFor(settledFor(id, 'expired'))
    expect(e.sender.calls).toHaveLength(1)
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'expired',
      last_error: expect.stringContaining('may have delivered it'),
    })
  })

  test('resent unverified on its last attempt: a send that fails for sure (500) names the earlier interrupted send as the one that may have delivered it, not the 500; a resend that times out names both', async () => {
    const answered = await enqueue(t, undefined, { maxAttempts: 1 })
    const unanswered = await enqueue(t, undefined, { maxAttempts: 1 })
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = any($1)`,
      [[answered, unanswered]],
    )
    const sender = createFakeSender()
    sender.script.set(answered, [
      { kind: 'retry', code: 'http_500', message: 'Internal Server Error' },
    ])
    sender.script.set(unanswered, [
      { kind: 'retry', code: 'timeout', message: 'Graph request exceeded its deadline' },
    ])
    const e = await started({ deps: { sender } })
    await e.events.waitFor(settledFor(answered, 'failed'))
    await e.events.waitFor(settledFor(unanswered, 'failed'))
    expect(await endings()).toEqual([
      exhaustedMarked(answered, RESENT_ANSWERED),
      exhaustedMarked(unanswered, RESENT_UNANSWERED),
    ])
  })

  test('resent unverified, a resend refused for good (4xx) fails the row naming the earlier interrupted send as the one that may have delivered it, its mark kept', async () => {
    const id = await ambiguousRow()
    const sender = createFakeSender()
    sender.script.set(id, [
      { kind: 'reject', code: 'ErrorSendAsDenied', message: 'HTTP 403', httpStatus: 403 },
    ])
    const e = await started({ deps: { sender } })
    await e.events.waitFor(settledFor(id, 'failed'))
    expect(sender.calls).toHaveLength(1)
    expect(await endings()).toEqual([
      {
        id,
        status: 'failed',
        last_error: 'HTTP 403 (an earlier interrupted send may have delivered it)',
        marked: true,
      },
    ])
    expect(await attemptsOf(t, id, 'outcome, error_code, error')).toEqual([
      {
        outcome: 'failed',
        error_code: 'ErrorSendAsDenied',
        error: 'HTTP 403 (an earlier interrupted send may have delivered it)',
      },
    ])
  })

  test('lookups on that cannot tell (policy resend), out of attempts after its lookup: an unverified resend that failed for sure (500) names the earlier interrupted send, one that timed out names both, a first send that timed out names itself', async () => {
    // Each row's first send times out (maxAttempts 2), and its lookups answer "unavailable" (no
    // Mail.Read): the second send is an unverified resend. A row of one attempt times out once.
    const answered = await enqueue(t, undefined, { maxAttempts: 2 })
    const unanswered = await enqueue(t, undefined, { maxAttempts: 2 })
    const first = await enqueue(t, undefined, { maxAttempts: 1 })
    const timeout = {
      kind: 'retry',
      code: 'timeout',
      message: 'Graph request exceeded its deadline',
    } as const
    const sender = createFakeSender()
    sender.script.set(answered, [
      timeout,
      { kind: 'retry', code: 'http_500', message: 'Internal Server Error' },
    ])
    sender.script.set(unanswered, [timeout, timeout])
    sender.script.set(first, [timeout])
    const e = await started({
      deps: { sender, lookup: async () => 'unavailable' },
      config: { retryBaseSeconds: 0.05, retryMaxSeconds: 0.1 },
    })
    for (const id of [answered, unanswered, first]) await e.events.waitFor(settledFor(id, 'failed'))
    expect(sender.calls.map((m) => m.outboxId).sort()).toEqual(
      [answered, answered, unanswered, unanswered, first].sort(),
    )
    expect(await endings()).toEqual([
      exhaustedMarked(answered, RESENT_ANSWERED),
      exhaustedMarked(unanswered, RESENT_UNANSWERED),
      exhaustedMarked(
        first,
        'Graph request exceeded its deadline (that send may have delivered it)',
      ),
    ])
  })

  test('a retry is marked ambiguous as its outcome says, else by its code', async () => {
    const e = await started()
    e.sender.hold()
    const cases = [
      { outcome: { code: 'timeout' }, ambiguous: true },
      { outcome: { code: 'timeout', ambiguous: false }, ambiguous: false }, // no request was made
      { outcome: { code: 'http_504', throttled: true, ambiguous: true }, ambiguous: true },
      { outcome: { code: 'http_500' }, ambiguous: false },
    ]
    const ids: string[] = []
    for (const c of cases) {
      const id = await enqueue(t)
      // Retried in a minute: the row keeps what its settlement wrote while the test reads it.
      e.sender.script.set(id, [
        { kind: 'retry', message: 'scripted', afterMs: 60_000, ...c.outcome },
      ])
      ids.push(id)
    }
    e.sender.release()
    const retried = (id: string) => (x: EngineEvent) =>
      x.type === 'settled' && x.id === id && x.outcome !== 'sent'
    for (const id of ids) await e.events.waitFor(retried(id))
    const marks = await Promise.all(ids.map(async (id) => (await rowOf(t, id)).send_started_at))
    expect(marks.map((m) => m !== null)).toEqual(cases.map((c) => c.ambiguous))
  })

  test('a throttle holds back its mailbox, unless it is the app’s (a refused credential)', async () => {
    const paused: number[] = []
    const gate: SendGate = {
      open: false,
      acquire: async () => ({ release: async () => {} }),
      pause: async (_mailbox, ms) => {
        paused.push(ms)
      },
    }
    const e = await started({ deps: { gate } })
    e.sender.hold()
    const mailbox = await enqueue(t)
    const app = await enqueue(t)
    const throttle = { kind: 'retry', code: 'x', message: 'm', throttled: true } as const
    e.sender.script.set(mailbox, [{ ...throttle, afterMs: 61_000 }])
    e.sender.script.set(app, [{ ...throttle, afterMs: 62_000, pausesMailbox: false }])
    e.sender.release()
    for (const id of [mailbox, app]) await e.events.waitFor(settledFor(id, 'throttled'))
    expect(paused).toEqual([61_000])
  })

  test('no lookup and policy hold: failed for review, not sent', async () => {
    const id = await ambiguousRow()
    const e = await started({ deps: { ambiguousPolicy: 'hold' } })
    await e.events.waitFor(settledFor(id, 'failed'))
    expect(await rowOf(t, id)).toMatchObject({
      status: 'failed',
      last_error_code: 'ambiguous_send',
    })
    expect(e.sender.calls).toEqual([])
  })
})

describe('heartbeats', () => {
  test('a send in flight has its lease extended by the heartbeat', async () => {
    const e = await started({ config: { heartbeatSeconds: 0.05 } })
    e.sender.hold()
    const id = await enqueue(t)
    await pollUntil(async () => (e.sender.inFlight() === 1 ? true : undefined))
    const claimed = (await rowOf(t, id)).lease_expires_at.getTime()
    // A beat (every 50 ms here) moves the lease on from where the claim set it.
    await pollUntil(async () =>
      (await rowOf(t, id)).lease_expires_at.getTime() > claimed ? true : undefined,
    )
    e.sender.release()
    await e.events.waitFor(settledFor(id, 'sent'))
    expect(await rowOf(t, id)).toMatchObject({ status: 'sent', attempts: 1 })
  })
})

describe('crash recovery', () => {
  // Longer than Bun's 5 s default, so a bound of its own: the preload's reaches one file (bun#43787).
  test("a dead worker's expired leases are reclaimed at start and, while running, by the reclaim timer", async () => {
    const [before, during] = [await enqueue(t), await enqueue(t)]
    // Claimed by a worker that died: one lease has run out already, the other runs 2 s more.
    await t.pool.query(
      `update mailer.email_outbox set status = 'sending', attempts = 1, lease_owner = 'dead',
          lease_token = gen_random_uuid(),
          lease_expires_at = now() + case when id = $1 then interval '-1 second' else interval '2 seconds' end
        where id in ($1, $2)`,
      [before, during],
    )
    // The second row is locked until the start's reclaim is over, which skips it: however late the
    // start (a loaded machine), that reclaim cannot take both, as it did with the lease timed alone.
    // Still running then, the lease sets the reclaim timer to its end (2 s, not a lease length);
    // ended by then, or still locked when the timer comes, it waits a lease length more: slower,
    // the same outcome.
    const lock = await t.pool.connect()
    let e: TestEngine
    try {
      await lock.query('begin')
      await lock.query('select 1 from mailer.email_outbox where id = $1 for update', [during])
      // The reclaim timer comes at the earliest lease's end, at least once per lease length.
      e = await started({ config: { leaseSeconds: 10 } })
      await e.events.waitFor(settledFor(before, 'sent'))
      await lock.query('commit')
      await e.events.waitFor(settledFor(during, 'sent'), 20_000)
    } finally {
      await lock.query('rollback').catch(() => {})
      lock.release()
    }
    expect(e.events.events.filter((x) => x.type === 'reclaimed')).toHaveLength(2)
    const history = await t.pool.query(
      'select outbox_id::text as id, outcome from mailer.email_attempts order by id',
    )
    expect(history.rows).toEqual([
      { id: before, outcome: 'lease_expired' },
      { id: before, outcome: 'sent' },
      { id: during, outcome: 'lease_expired' },
      { id: during, outcome: 'sent' },
    ])
  }, 30_000)
})

describe('graceful shutdown', () => {
  test('in-flight sends finish within the grace; rows not yet started are released uncounted', async () => {
    const e = createTestEngine(t, { config: { concurrency: 2 } })
    engine = e
    e.sender.hold()
    const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
    await e.start()
    await pollUntil(async () => (e.sender.inFlight() === 2 ? true : undefined))
    const stopping = e.drainer.stop(10_000)
    e.sender.release()
    await stopping
    engine = null
    const rows = await t.pool.query(
      'select id, status, attempts, lease_token from mailer.email_outbox order by id',
    )
    const sent = rows.rows.filter((r) => r.status === 'sent')
    expect(sent.length).toBe(2)
    expect(rows.rows.every((r) => r.lease_token === null)).toBe(true)
    const rest = rows.rows.filter((r) => r.status !== 'sent')
    expect(rest).toEqual(rest.map((r) => ({ ...r, status: 'pending', attempts: 0 })))
    expect(ids.length).toBe(3)
    await e.listener.stop()
  })

  test('a claim that comes back once the stop began releases its rows, even while no send could reach the provider', async () => {
    // Sends cannot reach the provider (Graph: no token within its backoff): a row met meanwhile
    // would go back with that wait. Stopping, it is released instead: due now, for another worker.
    const sender = createFakeSender()
    sender.unavailable = () => ({
      kind: 'retry',
      code: 'token_http_500',
      message: 'no token',
      afterMs: 60_000,
      throttled: true,
      pausesMailbox: false,
      ambiguous: false,
    })
    const waitingGate: SendGate = {
      open: false,
      acquire: async (_mailbox, signal) => (signal.aborted ? null : { release: async () => {} }),
      pause: async () => {},
    }
    const latches = boundedLatches(20_000)
    const claimAsked = latches.make('the claim asked for')
    const claimMayGo = latches.make('the claim let go once the stop began')
    const e = createTestEngine(t, {
      deps: {
        sender,
        gate: waitingGate,
        claim: async (db, p) => {
          claimAsked.resolve()
          await claimMayGo.wait()
          return claimBatch(db, p)
        },
      },
    })
    engine = e
    const id = await enqueue(t)
    await e.start()
    await claimAsked.wait()
    const stopping = e.drainer.stop(5_000)
    claimMayGo.resolve()
    await stopping
    await e.listener.stop()
    engine = null
    const row = await t.pool.query(
      'select status, attempts, send_at <= now() as due from mailer.email_outbox where id = $1',
      [id],
    )
    expect(row.rows[0]).toEqual({ status: 'pending', attempts: 0, due: true })
    expect(await attemptsOf(t, id, 'outcome')).toEqual([{ outcome: 'released' }])
  })

  test('past the grace, sends are aborted and their rows are left retryable and marked ambiguous', async () => {
    const e = createTestEngine(t, { config: { concurrency: 1 } })
    engine = e
    e.sender.hold()
    const id = await enqueue(t)
    await e.start()
    await pollUntil(async () => (e.sender.inFlight() === 1 ? true : undefined))
    await e.drainer.stop(100)
    await e.listener.stop()
    engine = null
    const row = await rowOf(t, id)
    expect(row).toMatchObject({ status: 'pending', lease_token: null, last_error_code: 'aborted' })
    expect(row.send_started_at).not.toBeNull()
    const w = await t.pool.query('select count(*)::int as n from mailer.workers')
    expect(w.rows[0].n).toBe(0)
  })
})

describe('poll-only mode', () => {
  test('LISTEN_MODE=poll never listens, reports polling, and still delivers', async () => {
    const e = await started({ config: { listenMode: 'poll', pollIntervalSeconds: 1 } })
    expect(e.listener.state()).toBe('polling')
    const id = await enqueue(t)
    await e.events.waitFor(settledFor(id, 'sent'), 20_000)
    // In this database only, and until earlier tests' listener sessions have finished exiting (a
    // backend is visible for a while after its client closed): a session of this engine would stay.
    const listeners = async () =>
      (
        await t.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where application_name = 'outbox-mailer:listener' and datname = current_database()`,
        )
      ).rows[0]?.n
    await pollUntil(async () => ((await listeners()) === 0 ? true : undefined)).catch(() => {})
    expect(await listeners()).toBe(0)
    expect(e.events.events.some((x) => x.type === 'notification')).toBe(false)
  })
})
