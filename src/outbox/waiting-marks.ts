// One worker's naming of the rows a cause holds: a pass over the due rows a bounded statement at a time, then the rows enqueued since.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import {
  type ClaimPosition,
  markWaitingRowsAbove,
  markWaitingRowsFrom,
  type WaitingCause,
} from './waiting-rows.ts'

export interface WaitingMarks {
  /**
   * Names rows `c` holds; returns how many it marked. `pass`: one step of the pass under way, or
   * of a new one (waiting-rows.ts: at most WAITING_ROWS_READ_PER_MARK rows read). `new`: the rows
   * above the highest id already passed, by id (the primary key), the rows enqueued since. A
   * cause with another code (or mailbox) starts over, with a pass.
   */
  mark(c: WaitingCause, step: 'pass' | 'new'): Promise<number>
  /** A pass is under way: it has not read the last due row yet. */
  passing(): boolean
  /** The cause is over: the next mark starts a pass from the start. */
  end(): void
}

/**
 * So a cause costs each row one write, and each mark statement a bounded read: a backlog of
 * 200,000 named rows is read once per pass (20 statements), not by every refusal; a pass reaches,
 * in claim order, the rows that became due since the last one (a sendAt reached, a bulk retry),
 * which the marks by id do not.
 */
export function createWaitingMarks(db: Kysely<Database>): WaitingMarks {
  let cause: string | null = null
  /** Where the pass under way goes on; undefined: none under way, null: it starts at the start. */
  let next: ClaimPosition | null | undefined
  /** The highest id the marks by id start above; null until a pass has begun. */
  let top: string | null = null
  return {
    async mark(c, step) {
      const key = `${c.code}\u0000${c.mailFromKey ?? ''}`
      if (key !== cause) {
        cause = key
        next = undefined
        top = null
      }
      if (step === 'pass' || top === null) {
        const from = next ?? null
        const r = await markWaitingRowsFrom(db, c, from)
        // A row enqueued since the pass began may come after the place it has reached.
        if (from === null) top = r.topId
        next = r.next ?? undefined
        return r.marked
      }
      const r = await markWaitingRowsAbove(db, c, top)
      top = r.topId
      return r.marked
    },
    passing: () => next !== undefined,
    end() {
      cause = null
      next = undefined
      top = null
    },
  }
}
