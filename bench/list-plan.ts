// The plan of one page of the list's statement (EXPLAIN ANALYZE, BUFFERS): its time, buffers and scans, for the list benches.
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
