// The plan of one page of the list's statement (EXPLAIN ANALYZE, BUFFERS): its time, buffers and scans, for the list benches.
import type { Kysely } from 'kysely'
import type { Database } from '../src/db/schema.ts'
import { type ListOrder, listStatement, walksPrimaryKey } from '../src/outbox/inspect.ts'
import type { OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { SPAN_ROWS, spanPageStatement } from '../src/outbox/span-page.ts'
import type { Probe } from './systems/probe.ts'

export interface ListPlan {
  executionMs: number
  /** Shared buffers hit and read under the top node. */
  buffers: number
  /** Rows the scans' filters removed. */
  removed: number
  /** Rows the scans returned plus those their filters removed, over every loop. */
  read: number
  /** Each scan's node type and index, once each. */
  how: string[]
}

/** Run twice: the second run is the one reported (a warm cache, as a repeated page walk). */
export async function explainList(
  probe: Probe,
  q: { sql: string; parameters: readonly unknown[] },
): Promise<ListPlan> {
  const sql = `explain (analyze, buffers, format json) ${q.sql}`
  await probe.query(sql, [...q.parameters])
  const [plan] = (await probe.query<{ 'QUERY PLAN': unknown[] }>(sql, [...q.parameters]))[0]![
    'QUERY PLAN'
  ] as { Plan: Record<string, unknown>; 'Execution Time': number }[]
  const top = plan!.Plan
  const scans = findScans(top)
  return {
    executionMs: plan!['Execution Time'],
    buffers: Number(top['Shared Hit Blocks'] ?? 0) + Number(top['Shared Read Blocks'] ?? 0),
    removed: scans.reduce((n, s) => n + Number(s['Rows Removed by Filter'] ?? 0), 0),
    read: scans.reduce(
      (n, s) =>
        n +
        (Number(s['Actual Rows'] ?? 0) + Number(s['Rows Removed by Filter'] ?? 0)) *
          Number(s['Actual Loops'] ?? 1),
      0,
    ),
    how: [...new Set(scans.map((s) => `${s['Node Type']} ${s['Index Name'] ?? ''}`.trim()))],
  }
}

function findScans(node: Record<string, unknown>): Record<string, unknown>[] {
  // The list's span subquery passes on what its index scan read: counted there.
  const own = String(node['Node Type']).includes('Scan') && node.Alias !== 'span' ? [node] : []
  const children = (node.Plans as Record<string, unknown>[] | undefined) ?? []
  return [...own, ...children.flatMap(findScans)]
}

/** One page's plan as listOutbox runs it, the page's rows, and which statements ran. */
export interface PagePlan extends ListPlan {
  items: number
  /** A span walked (walksPrimaryKey), or the list statement whose pending rows it left to one. */
  spans: boolean
  then: boolean
}

/**
 * What GET /v1/outbox runs for one page (src/outbox/inspect.ts's listOutbox; no writers open, so no
 * horizon): a span of the primary key where walksPrimaryKey says so, else listStatement, and after
 * it a span when its pending rows are left unresolved (both statements summed). Null when nothing
 * can match.
 */
export async function explainPage(
  probe: Probe,
  db: Kysely<Database>,
  filter: OutboxFilter,
  page: { limit: number; order: ListOrder; after: string | undefined },
): Promise<PagePlan | null> {
  const walk = {
    order: page.order === 'oldest' ? 'asc' : 'desc',
    limit: page.limit,
    after: page.after,
    spanRows: SPAN_ROWS,
  } as const
  const spans = walksPrimaryKey(filter)
  const q = spans
    ? spanPageStatement(db, filter, null, walk).compile(db)
    : listStatement(db, filter, page, null)?.compile(db)
  if (!q) return null
  const plan = await explainList(probe, q)
  let got = await probe.query<{ id: string | null; pending_unresolved?: boolean }>(q.sql, [
    ...q.parameters,
  ])
  const then = !spans && got[0]?.pending_unresolved === true
  if (then) {
    const s = spanPageStatement(db, filter, null, walk).compile(db)
    const more = await explainList(probe, s)
    plan.executionMs += more.executionMs
    plan.buffers += more.buffers
    plan.removed += more.removed
    plan.read += more.read
    plan.how = [...new Set([...plan.how, ...more.how])]
    got = await probe.query(s.sql, [...s.parameters])
  }
  const items = Math.min(got.filter((r) => r.id !== null).length, page.limit)
  return { ...plan, items, spans, then }
}
