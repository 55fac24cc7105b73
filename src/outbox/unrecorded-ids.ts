// The ids of accepted sends left unrecorded, bounded: the first UNRECORDED_NAMED named, every one counted, so a stop's last line stays small however many a process gave up.
/** How many unrecorded sends a queue (and a stop's last line, per database) names; the rest are counted. */
export const UNRECORDED_NAMED = 100

/** Unrecorded sends: `ids` named, `more` counted beside them. Invariant: none is ever dropped from both. */
export interface UnrecordedIds {
  ids: string[]
  more: number
}

export function createIdTally() {
  const ids: string[] = []
  let count = 0
  return {
    add(id: string) {
      count += 1
      if (ids.length < UNRECORDED_NAMED) ids.push(id)
    },
    ids: (): readonly string[] => ids,
    count: () => count,
  }
}

/** The tallies and lists together: the first UNRECORDED_NAMED ids in their order, the rest counted. */
export function unrecordedOf(
  parts: readonly { ids: readonly string[]; count: number }[],
): UnrecordedIds {
  const ids = parts.flatMap((p) => p.ids).slice(0, UNRECORDED_NAMED)
  const total = parts.reduce((n, p) => n + p.count, 0)
  return { ids, more: total - ids.length }
}
