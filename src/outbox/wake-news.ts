// The news a drainer's wakes brought since its last claim began: none, the one row a notification named, or other news.
/**
 * undefined: none. A row id: the only news named that row (its transaction inserted it alone),
 * which the next claim with no backlog tries alone first (claimBatch's notifiedId). null: other
 * news (a bulk insert, a timer, a poll, a reclaim, a second row), and the claim looks for itself.
 * News may mean rows the claim in flight did not see; a wake for room in the local queue (refill)
 * is none: it only means "claim the backlog", which a claim that came back short has shown to be
 * gone (it cost every drain one more empty claim).
 */
export function createWakeNews() {
  let news: string | null | undefined
  return {
    /** A wake; `rowId`: the one row a notification named. */
    heard(rowId?: string) {
      news = news === undefined && rowId !== undefined ? rowId : null
    },
    /** A claim begins: the row it tries alone first (none under a backlog); the news is taken. */
    take(backlog: boolean): string | null {
      const rowId = backlog ? null : (news ?? null)
      news = undefined
      return rowId
    },
    /** Whether news came since the last claim began. */
    any: () => news !== undefined,
  }
}
