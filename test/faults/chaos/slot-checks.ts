// Send slots after the chaos: none left held by a process that stopped cleanly, none held past its time to live.
import type { Database, Mailer } from '../harness.ts'
import type { ChaosRecord } from './record.ts'
import { GRAPH_TIMEOUT_SECONDS } from './settings.ts'

/** A killed process's slots expire with their TTL: only clean stops must have given theirs back. */
export async function checkSlots(db: Database, record: ChaosRecord, mailers: readonly Mailer[]) {
  const { problems, gracefulPids, pgDownSpans } = record
  const slots = await db.q<{ slot: number; holder: string; ahead_ms: number }>(
    `select slot, holder, extract(epoch from expires_at - now()) * 1000 as ahead_ms
       from mailer.send_slots where expires_at > now()`,
  )
  const slotTtlMs = (GRAPH_TIMEOUT_SECONDS + 15) * 1000
  for (const s of slots) {
    const pid = Number(s.holder.split(':')[1])
    // A stop while Postgres was down cannot give its slots back: they expire by themselves.
    const stop = gracefulPids.get(pid)
    const duringOutage =
      stop !== undefined &&
      pgDownSpans.some((d) => d.from <= stop.to + 1_000 && stop.from <= d.to + 1_000)
    if (stop && !duringOutage) {
      const m = mailers.find((x) => x.proc.pid === pid)
      problems.push(
        `slot ${s.slot} still held ${Math.round(s.ahead_ms)} ms ahead by ${m?.name ?? '?'} (${s.holder}), which stopped cleanly\n${m?.logTail(12) ?? ''}`,
      )
    }
    if (s.ahead_ms > slotTtlMs + 1_000) problems.push(`slot ${s.slot} held ${s.ahead_ms} ms ahead`)
  }
}
