// Rows waiting for a mailbox's owed probe that its end left locked (noted by sql/0116's trigger): brought due once free, after its notification and at each backstop poll.
import { type Kysely, sql } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { SideStatements } from './side-statements.ts'

/**
 * The owed state's end left rows locked: sql/0116's payload, alone or followed by the id of one
 * of the mailbox's own rows (0109's, which a round-44 worker reads). Never an address: every
 * session listening on the channel hears the payload.
 */
const OWED_ROWS_HELD = 'owed-rows-held'

/** The notification says rows were left locked at an owed probe's end. */
export function tellsOfHeldOwedRows(payload: string | undefined): boolean {
  return payload === OWED_ROWS_HELD || payload?.startsWith(`${OWED_ROWS_HELD} `) === true
}

// A locked row is asked for again this often: a user's transaction or a claim holds it briefly.
const RETRY_MS = 1_000

/**
 * Brings due now the rows noted as waiting for a mailbox's owed probe (mailer.owed_probe_lookups)
 * where that probe is owed no more (its end left them locked, or a note outlived a row's give-back):
 * those free now, skipping those still locked (never waiting for a user's lock); wakes the workers
 * when any moved; forgets the notes of rows that wait no more. Returns the ids of the noted rows
 * that still wait. `heldBefore`: what the caller's last ask returned; when a row it named waits no
 * more (none waits now, or another waits in its place), it wakes the workers even if it moved none:
 * another worker's ask moved it, and this caller's last statement, its snapshot older than that
 * move, may have locked it unmoved while the claims that move's wake brought ran (skip locked: none
 * took it, and nothing else wakes before the backstop poll or its old due time, the probe's end).
 * Which rows wait, not how many: a row beginning to wait as the moved one stopped keeps the count.
 * One wake per row that stopped waiting at most, per worker. Invariant: only pending rows given
 * back for a pause (mailbox_paused) move, only earlier; the notes read whole (only rows left
 * behind, or lookups waiting: few), the rows by primary key.
 */
export async function heldOwedRowsDue(
  db: Kysely<Database>,
  heldBefore: readonly string[] = [],
): Promise<string[]> {
  // Every CTE reads this statement's snapshot: the rows moved still look waiting, hence `due`.
  const { rows } = await sql<{ held: string[] }>`
    with ended as materialized (
      select w.mailbox, w.outbox_id from mailer.owed_probe_lookups w
       where not exists (select from mailer.mailbox_pacing m where m.mailbox = w.mailbox and m.probe_owed)
    ),
    due as (
      update mailer.email_outbox o set send_at = now()
       where o.ctid = any(array(
               select c.ctid from mailer.email_outbox c
                where c.id in (select e.outbox_id from ended e)
                  and c.status = 'pending' and c.send_at > now() and c.last_error_code = 'mailbox_paused'
                  for update of c skip locked))
         and o.status = 'pending' and o.send_at > now()
      returning o.id
    ),
    waiting as (
      select c.id from mailer.email_outbox c
       where c.id in (select e.outbox_id from ended e)
         and c.status = 'pending' and c.send_at > now() and c.last_error_code = 'mailbox_paused'
         and c.id not in (select d.id from due d)
    ),
    forgotten as (
      delete from mailer.owed_probe_lookups w using ended e
       where w.mailbox = e.mailbox and w.outbox_id = e.outbox_id
         and e.outbox_id not in (select g.id from waiting g)
    )
    select coalesce((select array_agg(g.id order by g.id) from waiting g), '{}') as held,
           (select bool_or(pg_notify('mailer_outbox', '') is null)
              from ((select from due limit 1)
                    union all
                    select where exists (select from unnest(${heldBefore}::bigint[]) b(id)
                                          where b.id not in (select g.id from waiting g))) d) as woken`.execute(
    db,
  )
  return rows[0]?.held ?? []
}

/**
 * One loop at a time brings the held rows due about once a second until none is left (their own
 * due time, the probe's end, ends it at the latest; a statement that fails, too), each ask told
 * what the last one found (heldOwedRowsDue's heldBefore: the round that finds a row the last one
 * found waiting no more wakes the workers, whoever moved it). `held` (sql/0116's notification)
 * asks a second later, as the lock just met is still held; `polled` (the backstop poll, once a
 * second without LISTEN) asks now, and its failure is the poll's claim's to report.
 * Each loop is one of the worker's statements beside its claims (`besides`): its stop waits for it
 * there; none begins once `signal` aborted. Invariant: a loop never rejects.
 */
export function createHeldOwedRows(d: {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  signal: AbortSignal
  besides: SideStatements
}): { held(): void; polled(): void } {
  let running: Promise<void> | null = null
  // A notification heard while the loop runs: its statement's snapshot may predate the notes.
  let heardMeanwhile = false
  async function loop(askNow: boolean) {
    let wait = !askNow
    let held: string[] = []
    while (!d.signal.aborted) {
      if (wait) await d.clock.sleep(RETRY_MS, d.signal)
      if (d.signal.aborted) return
      wait = true
      try {
        held = await heldOwedRowsDue(d.db, held)
        if (held.length === 0) return
      } catch (err) {
        // Not tried again: a database away would have it fail (and warn) every second for as long.
        // The rows come due at their own time, the probe's end, or at a poll once it is back.
        if (!askNow)
          d.log.warn('bringing due the rows held at an owed probe failed; they wait for its end', {
            err,
          })
        return
      }
    }
  }
  const start = (askNow: boolean) => {
    if (running || d.signal.aborted) return
    heardMeanwhile = false
    running = d.besides.track(
      loop(askNow).finally(() => {
        running = null
        if (heardMeanwhile) start(false)
      }),
    )
  }
  return {
    held() {
      if (running) heardMeanwhile = true
      else start(false)
    },
    polled: () => start(true),
  }
}
