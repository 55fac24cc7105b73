// GRAPH_MAX_CONCURRENCY above Outlook's limit of concurrent requests per app: taken, and warned of.

/**
 * Outlook runs at most 4 requests of one app at once, whichever mailboxes they reach; past them
 * Graph answers 429 ApplicationThrottled, "Application is over its MailboxConcurrency limit"
 * (research/graph.md, Outlook's limits per app ID). Some tenants may be granted more: a warning,
 * never a refusal.
 */
export const OUTLOOK_CONCURRENT_REQUESTS = 4

/**
 * What serve logs at its start and check-config prints for a limit above Outlook's, or null: only
 * a process that sends through Graph takes provider slots (an API-only one builds no transport).
 */
export function graphConcurrencyWarning(p: {
  role: 'all' | 'worker' | 'api'
  transport: string
  graphMaxConcurrency: number
}): string | null {
  if (p.role === 'api' || p.transport !== 'graph') return null
  if (p.graphMaxConcurrency <= OUTLOOK_CONCURRENT_REQUESTS) return null
  return `GRAPH_MAX_CONCURRENCY is ${p.graphMaxConcurrency}, above Outlook's ${OUTLOOK_CONCURRENT_REQUESTS} concurrent requests per app: Graph answers a request past them 429 (MailboxConcurrency), and its mailbox waits as after any throttle`
}
