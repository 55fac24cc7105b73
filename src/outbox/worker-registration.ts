// Worker registration: what a drainer notes of itself in the registry, and the lease key its claimed rows name it by.
import type { Logger } from '../log.ts'
import { mailFromPauseKey } from './default-sender-pause.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { LastSend } from './last-send.ts'
import { createLeaseKey } from './lease-key.ts'

export function createWorkerRegistration(d: DrainerDeps, log: Logger, lastSend: LastSend) {
  const cfg = d.config
  // What its claimed rows name it by in this database (lease_owner); its registry entry says who.
  // Its registry entry notes the timeout its sends run under, whole seconds rounded up, for older
  // binaries' lookups of its interrupted sends (sql/0070); this one's read the deadline each start
  // noted on its row (sql/0078, lookup-grace.ts).
  // It notes too the mailbox whose owed probe it honours ('' none), so another worker's reclaim
  // clears a probe owed for a mailbox no live worker sends from (sql/0079, stale-probes.ts).
  const registered = {
    ...d.worker,
    requestTimeoutSeconds:
      d.sendTimeoutMs === undefined ? null : Math.max(1, Math.ceil(d.sendTimeoutMs / 1000)),
    probeMailbox: mailFromPauseKey(d.gate, d.mailFrom) ?? '',
    // Idle, it beats once per lease length: others judge it live by that (sql/0084).
    leaseSeconds: cfg.leaseSeconds,
  }
  const leaseKey = createLeaseKey(d.db, registered, {
    onRegistered: () => log.info('worker registered', { workerId: d.worker.id }),
    // Its entry was lost and another worker drew the key meanwhile (lease-key.ts beaten).
    onTaken: (takenKey) =>
      log.warn('lease key held by another worker; drawing a new one', {
        workerId: d.worker.id,
        takenKey,
      }),
  })
  // The identity its heartbeats and reclaims beat under carries the key, so a lost entry comes back keyed.
  // It notes too, at each beat and as the refusal changes (credential-refusal-note.ts), whether
  // the provider refuses its credential (sql/0198): read by status and /v1/stats (credential-refusals.ts).
  const worker = {
    ...registered,
    get leaseKey() {
      return leaseKey.current()
    },
    get credentialRefusal() {
      return d.credentialRefusal?.() ?? null
    },
    // And its newest send, until a beat has noted it (sql/0201): status reads the outbox's newest
    // send from the registry (none-sent-for.ts).
    get unnotedSend() {
      return lastSend.unnoted()
    },
  }
  return { leaseKey, worker }
}
