// The chaos soak's token line: what the run did to the workers' Graph tokens and what came of it, counted from the fake, the history and the logs.

import { NO_TOKEN_CODE } from '../../../src/outbox/settle-item.ts'
import { TOKEN_SLOW_CODE } from '../../../src/transport/token-slow.ts'
import type { FakeGraph } from '../../support/fake-graph.ts'
import type { Mailer } from '../harness.ts'
import { mailerLogEntries } from './mailer-log-entries.ts'
import type { ChaosOutcome } from './outcome.ts'
import type { ChaosRecord } from './record.ts'

const NO_TOKEN = new RegExp(NO_TOKEN_CODE)
/** The debug lines of src/outbox/block-naming.ts: rows a refusal's block holds, and rows whose pacing turn it gave up. */
const BLOCK_NAMED = 'rows waiting for the block named'
const TURNS_GIVEN_UP = 'rows sent back for a pacing turn due and named by the block'

/**
 * Whether a passing run exercised the token paths, none of it from wall-clock timing:
 * - revokes: the harness's revocations, by what Entra was set to answer the refresh
 *   (revokedEntraHung, revokedEntra503, revokedEntraFine);
 * - tokenRequests, tokensIssued, entraHung (a request the fake held: each revocation set to hang
 *   queues one hang, so this many revocations met a hung Entra; one whose hang a later change of
 *   the fake's faults dropped met none), entraRefused (answered with an AADSTS code), graph401
 *   (sendMail and lookups answered 401: a revoked token used);
 * - tokenSlowGiveBacks: each row given back `token_slow`, from the workers' `settled` lines
 *   (LOG_LEVEL=debug, the soak's default; an older binary gives none back so); tokenSlowRows: the
 *   rows among them and those with a `token_slow` history entry; tokenSlowEntries: those entries
 *   (the history records a run of token waits once, its first: settle.ts, so a row that waited for
 *   a token already when its request turned slow has none);
 * - tokenWaitRows: rows with a history entry of another wait for a token (token_timeout,
 *   token_http_503, AADSTS…); graphUnauthorizedRows: with one of Graph refusing every token;
 * - blockedRowsNamed, turnsGivenUpAtRefusal: rows a refusal's block named, and rows sent back for a
 *   pacing turn made due when the turns were given up at it (paced-rows-blocked.ts), from the
 *   workers' debug lines. The soak paces no mailbox (MAILBOX_RATE_PER_MINUTE 0) and Entra never
 *   refuses a credential for good in it, so these stay 0: a count above says the soak changed.
 */
export function tokenCounts(
  record: Pick<ChaosRecord, 'figures' | 'revokedWith'>,
  fake: Pick<FakeGraph, 'tokenRequests' | 'unauthorizedRequests'>,
  historyOf: ChaosOutcome['historyOf'],
  mailers: readonly Pick<Mailer, 'logPath'>[],
): Record<string, number> {
  const { tokenRequests } = fake
  let tokenSlowEntries = 0
  const tokenSlowRows = new Set<string>()
  const tokenWaitRows = new Set<string>()
  const graphUnauthorizedRows = new Set<string>()
  for (const [id, entries] of historyOf) {
    for (const e of entries) {
      if (e.error_code === TOKEN_SLOW_CODE) {
        tokenSlowEntries++
        tokenSlowRows.add(id)
      } else if (e.error_code === 'graph_unauthorized') graphUnauthorizedRows.add(id)
      else if (e.error_code !== null && NO_TOKEN.test(e.error_code)) tokenWaitRows.add(id)
    }
  }
  let tokenSlowGiveBacks = 0
  let blockedRowsNamed = 0
  let turnsGivenUpAtRefusal = 0
  const n = (v: unknown) => (typeof v === 'number' ? v : 0)
  for (const entry of mailerLogEntries(mailers)) {
    if (entry.msg === 'settled' && entry.code === TOKEN_SLOW_CODE) {
      tokenSlowGiveBacks++
      if (typeof entry.outboxId === 'string') tokenSlowRows.add(entry.outboxId)
    } else if (entry.msg === BLOCK_NAMED) blockedRowsNamed += n(entry.marked)
    else if (entry.msg === TURNS_GIVEN_UP) turnsGivenUpAtRefusal += n(entry.paced)
  }
  return {
    revokes: record.figures.revokes,
    revokedEntraHung: record.revokedWith.hangs,
    revokedEntra503: record.revokedWith['503'],
    revokedEntraFine: record.revokedWith.fine,
    tokenRequests: tokenRequests.length,
    tokensIssued: tokenRequests.filter((t) => t.ok).length,
    entraHung: tokenRequests.filter((t) => t.hung).length,
    entraRefused: tokenRequests.filter((t) => t.error !== undefined).length,
    graph401: fake.unauthorizedRequests(),
    tokenSlowRows: tokenSlowRows.size,
    tokenSlowEntries,
    tokenSlowGiveBacks,
    tokenWaitRows: tokenWaitRows.size,
    graphUnauthorizedRows: graphUnauthorizedRows.size,
    blockedRowsNamed,
    turnsGivenUpAtRefusal,
  }
}
