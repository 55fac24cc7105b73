// Which queued settlements go in the next settleLeases statement: each row once, a refused one alone.
import type { SettledRow, SettleItem } from './settle-item.ts'

export interface QueuedSettlement {
  item: SettleItem
  done: (row: SettledRow | null) => void
  /** How many times its row came back busy (locked by another transaction). */
  busy: number
  /** When its value was first refused (monotonicNow), and how often since: retried aside until giveUpAfterMs. */
  refused?: { since: number; times: number }
}

// Up to 500 in order, each row once: a statement answers by row id, so a stale lease's item (its
// row reclaimed and claimed again meanwhile) beside the live one's would read the live outcome
// as its own. The second waits for the next statement. A row whose value was refused goes alone:
// in a batch it would fail the statement again and send every row beside it the row-by-row way.
export function nextBatch(queue: QueuedSettlement[]): QueuedSettlement[] {
  if (queue[0]?.refused) return queue.splice(0, 1)
  const ids = new Set<string>()
  let n = 0
  while (n < queue.length && n < 500 && !ids.has(queue[n]!.item.id) && !queue[n]!.refused)
    ids.add(queue[n++]!.item.id)
  return queue.splice(0, n)
}
