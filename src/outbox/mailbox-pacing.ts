// Statements behind per-mailbox pacing: turns taken and reserved, in database time (a pause set and read: mailbox-pause.ts).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { type PauseLeftMs, pauseLeftMs } from './endless-pause.ts'
import { rateInForceOr } from './pacing-rate.ts'
import { pauseEnd } from './paused-now.ts'

/**
 * GCRA pacing: takes the mailbox's next send time if it has come, and moves it one interval on.
 * The interval is the newest worker's (PACING_RATE_KEY, pacing-rate.ts), this worker's when none
 * noted one; a turn is spaced from the last one taken (next_at − turn_interval) by it, so a changed
 * rate holds from the next turn on. A throttle's pause (turn_interval 0) and a row an older binary
 * wrote (NULL) end at next_at; a throttle within a turn holds to throttled_until (sql/0112) too,
 * whatever the rate. Returns waitMs 0 when taken, else the milliseconds to wait (> 0; a pause with
 * no end: a recheck, pauseLeftMs), and the interval it paced by. With `rowId`, no turn
 * is taken while the mailbox's probe is owed (a MAIL_FROM's, owed-probe.ts) and the row is not that
 * probe (probe_id): probeOwed says so. Taken, `turn` names the next send time it left (epoch, text):
 * while next_at still reads so, no turn was taken since (kept-turn-wait.ts). Not taken, `refused`
 * says a pause stands whose cause is Graph refusing the mailbox (pause_reason, sql/0172).
 */
export async function takePacing(
  db: Kysely<Database>,
  p: { mailbox: string; intervalMs: number; rowId?: string },
): Promise<{
  waitMs: PauseLeftMs
  intervalMs: number
  probeOwed?: true
  turn?: string
  refused?: true
}> {
  // Another row's probe owed: a row of a worker whose MAIL_FROM is another (a rolling deploy that
  // changed it) names this mailbox and would send past the probe. On the row the upsert reads.
  const row = p.rowId ?? null
  const { rows } = await sql<{
    wait_ms: number | string
    interval_ms: number
    probe_owed: boolean
    turn: string | null
    refused: boolean | null
  }>`
    with r as materialized (
      select ${rateInForceOr(sql`make_interval(secs => ${p.intervalMs / 1000})`)} as i
    ), taken as (
      insert into mailer.mailbox_pacing as m (mailbox, next_at, turn_interval)
      select ${p.mailbox}, now() + r.i, r.i from r
      on conflict (mailbox) do update
         set next_at = now() + excluded.turn_interval, turn_interval = excluded.turn_interval
       -- A throttle within the turn (throttled_until) holds too, should a faster rate bring the turn
       -- sooner; lifted by hand with next_at (mailboxPausedFor).
       where greatest(case when m.turn_interval > interval '0' then m.next_at - m.turn_interval + excluded.turn_interval
                           else m.next_at end,
                      case when m.throttled_until <= m.next_at then m.throttled_until end) <= now()
         and not (${row}::bigint is not null and m.probe_owed and m.probe_id is distinct from ${row}::bigint)
      returning 0::float8 as wait_ms, extract(epoch from m.next_at)::text as turn
    )
    select wait_ms, (select extract(epoch from i) * 1000 from r)::float8 as interval_ms, false as probe_owed, turn,
           null::boolean as refused from taken
    union all
    select greatest(1, mailer.ms_until(greatest(case when m.turn_interval > interval '0' then m.next_at - m.turn_interval + r.i
                                                     else m.next_at end,
                                                case when m.throttled_until <= m.next_at then m.throttled_until end))),
           (extract(epoch from r.i) * 1000)::float8,
           ${row}::bigint is not null and m.probe_owed and m.probe_id is distinct from ${row}::bigint,
           -- A pause standing whose cause is Graph refusing the mailbox (0172): the rows it sends back say so.
           null, m.pause_reason = 'refused' and ${GATE_PAUSE_END} > now()
      from mailer.mailbox_pacing m, r where m.mailbox = ${p.mailbox} and not exists (select 1 from taken)`.execute(
    db,
  )
  // Neither taken nor visible: another worker created the row after this statement's snapshot.
  // Ask again shortly; never count that as taken.
  const r = rows[0]
  if (!r) return { waitMs: pauseLeftMs(1), intervalMs: p.intervalMs }
  const waitMs = pauseLeftMs(r.wait_ms)
  if (r.probe_owed)
    return {
      waitMs,
      intervalMs: r.interval_ms,
      probeOwed: true,
      ...(r.refused && { refused: true }),
    }
  if (r.refused) return { waitMs, intervalMs: r.interval_ms, refused: true }
  return r.turn === null
    ? { waitMs, intervalMs: r.interval_ms }
    : { waitMs, intervalMs: r.interval_ms, turn: r.turn }
}

/**
 * Reserves a future pacing turn of the mailbox for a row that goes back to wait for it, and returns
 * the milliseconds until it (>= 0). Turns are handed out one interval apart from a horizon that
 * starts one interval past the mailbox's next send time (that one is left for a row waiting in
 * place), so rows sent back by every worker come due one at a time instead of together. A turn
 * is a schedule, not a permit: the row still takes its send through takePacing, so the rate and a
 * throttle's pause hold whatever the turns say. The horizon is kept in mailer.mailbox_pacing under
 * the key 'queue ' || mailbox, which no mailbox key can be (an address does not begin with an
 * unquoted word and a space), with the interval its last turn was reserved under (turn_interval).
 * Null, reserving nothing, when no pacing is in force (the newest worker's rate is 0). With
 * `rowId`, as takePacing, nothing is reserved while the mailbox's probe is owed and the row is not
 * it: probeOwed, with the milliseconds its pause or turn is still off (the turn would be spent on a
 * row that may not be sent, and the row claimed again for it).
 */
export async function reservePacing(
  db: Kysely<Database>,
  p: { mailbox: string; intervalMs: number; rowId?: string },
): Promise<PauseLeftMs | null | { probeOwed: true; waitMs: PauseLeftMs; refused?: true }> {
  // The newest worker's interval, as takePacing; the horizon's last turn (next_at − turn_interval)
  // is spaced from by it, so turns reserved under a changed rate continue at the new one. A pause
  // to 'infinity' (by hand) or a horizon left there counts from now(): the horizon stays finite.
  // The turn is no permit: takePacing still holds the row while the pause stands.
  const row = p.rowId ?? null
  const { rows } = await sql<{
    wait_ms: number | string
    probe_owed: boolean
    refused: boolean | null
  }>`
    with r as materialized (
      select ${rateInForceOr(sql`make_interval(secs => ${p.intervalMs / 1000})`)} as i
    ), m as materialized (
      select case when m.turn_interval > interval '0' then m.next_at - m.turn_interval + r.i
                  else m.next_at end as turn_at,
             ${row}::bigint is not null and m.probe_owed and m.probe_id is distinct from ${row}::bigint as owed,
             -- A pause standing whose cause is Graph refusing the mailbox (0172): the row sent back says so.
             m.pause_reason = 'refused' and ${GATE_PAUSE_END} > now() as refused
        from mailer.mailbox_pacing m, r where m.mailbox = ${p.mailbox}
    ), reserved as (
      insert into mailer.mailbox_pacing as q (mailbox, next_at, turn_interval)
      select ${`queue ${p.mailbox}`},
             greatest(coalesce((select case when isfinite(turn_at) then turn_at end from m), now()), now()) + 2 * r.i, r.i
        from r
       where r.i > interval '0' and not exists (select from m where m.owed)
      on conflict (mailbox) do update
         set next_at = greatest(case when not isfinite(q.next_at) then now()
                                     when q.turn_interval > interval '0' then q.next_at - q.turn_interval + excluded.turn_interval
                                     else q.next_at end,
                                excluded.next_at - excluded.turn_interval) + excluded.turn_interval,
             turn_interval = excluded.turn_interval
      returning greatest(0, extract(epoch from q.next_at - q.turn_interval - now()) * 1000)::float8 as wait_ms
    )
    select wait_ms, false as probe_owed, null::boolean as refused from reserved
    union all
    select greatest(1, mailer.ms_until(turn_at))::float8, true, refused from m where m.owed`.execute(
    db,
  )
  const r = rows[0]
  if (!r) return null
  const waitMs = pauseLeftMs(r.wait_ms)
  if (!r.probe_owed) return waitMs
  return r.refused ? { probeOwed: true, waitMs, refused: true } : { probeOwed: true, waitMs }
}

// The pause's end as every reader of a pause reads it (paused-now.ts), of the row read (m) under
// the rate in force (r.i); built once, as the statement's other text.
export const GATE_PAUSE_END = sql.raw(pauseEnd('m', 'r.i'))
