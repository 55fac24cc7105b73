// A drainer's send records: each send's start noted with its deadline (start-send.ts) and its outcome settled (settlements.ts).
import type { Logger } from '../log.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { LastSend } from './last-send.ts'
import { lookupPastExpirySeconds } from './lookup-grace.ts'
import { LAST_CHECK_IN_SLOT_MS } from './send-attempt.ts'
import { createSettlements } from './settlements.ts'
import { createStartQueue } from './start-queue.ts'
import { startSends } from './start-send.ts'

export function createSendRecords(d: DrainerDeps, log: Logger, lastSend: LastSend) {
  const settle = createSettlements({
    sendRecorded: lastSend.recorded,
    db: d.db,
    workerId: d.worker.id,
    config: d.config,
    lookupPastExpirySeconds: lookupPastExpirySeconds(d.lookupGraceSeconds),
    clock: d.clock,
    log,
  })

  // The deadline noted with each start is this process's own (sql/0078).
  const sendTimeoutSeconds = d.sendTimeoutMs === undefined ? null : d.sendTimeoutMs / 1000
  const lastChecks = createStartQueue((leases) => startSends(d.db, leases, sendTimeoutSeconds), {
    clock: d.clock,
    slowMs: LAST_CHECK_IN_SLOT_MS,
  })
  return { settle, lastChecks }
}
