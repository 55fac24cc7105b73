// HealthSource over the running engine: probes each database and reads its drainer and listener state.
import { monotonicNow, systemClock, waitAtMost } from '../clock.ts'
import { LOCK_TIMEOUT_SQLSTATE } from '../db/lock-in-the-way.ts'
import { assertSchemaCurrentAndWrites } from '../db/schema-state.ts'
import { notUtf8Warning } from '../db/server-encoding.ts'
import { sessionRefusesWrites } from '../db/server-takes-writes.ts'
import { unreachableCause } from '../db/unreachable-cause.ts'
import {
  answered,
  answeredProblem,
  listenerProblem,
  lockedSchemaProblem,
} from './database-problem.ts'
import { claimsFailingLongEnough, failingClaimsProblem } from './failing-claims-problem.ts'
import { type DatabaseHealth, type HealthSource, sessionHolds } from './health.ts'
import type { HealthMonitorOptions, MonitoredDatabase } from './health-monitor-options.ts'
import { loopLiveness } from './loop-liveness.ts'

const SCHEMA_RECHECK_MS = 5 * 60_000
/**
 * A probe within this long of an answer to any statement of the worker's (a poll's claim, a
 * scrape's read, the last probe's own) stands on that answer instead of a statement of its own: a
 * third of Fly's 15 s check interval. So a database that stops answering is reported at most this
 * long after its last answer (and the probe's own wait, 2 s); at once after a statement of the
 * worker failed, or its LISTEN session dropped (the listener's state).
 */
const READINESS_PROOF_MS = 5_000
export function createHealthMonitor(o: HealthMonitorOptions): HealthSource {
  const elapsed = o.monotonicNow ?? (() => monotonicNow(systemClock))
  const timeoutMs = o.probeTimeoutMs ?? 2_000
  const problemMakes = o.transportProblemMakes ?? 'unready'
  // As a warning, the problem comes first: it is what stops every send.
  const transportWarning = () => {
    const said = [
      problemMakes === 'warning' ? (o.transportProblem?.() ?? null) : null,
      o.transportWarning?.() ?? null,
    ].filter((w) => w !== null)
    return said.length > 0 ? said.join('; ') : null
  }

  // The schema changes only when a release migrates: once found current, it is read again after
  // SCHEMA_RECHECK_MS, or after the database was found unreachable; in between a probe is `select 1`,
  // or none within READINESS_PROOF_MS of an answer. (Fly's check every 15 s was three statements:
  // 0.2 statements/s per database.)
  // A wall clock set back must not make an old answer look recent: an age below 0 is none.
  const answeredRecently = (at: number | null) => {
    const age = at === null ? Number.NaN : elapsed() - at
    return age >= 0 && age < READINESS_PROOF_MS
  }
  const schemaCheckedAt = new Map<string, number>()
  for (const name of o.schemaCurrent ?? []) schemaCheckedAt.set(name, elapsed())
  // What the last probe's statement said of writes: since when (on `monotonicNow`) the session refused them,
  // null when it took them; absent before the first (but where the start's schema read, in the same
  // statement, found them taken: takingWrites), and after the database was unreachable. Only a
  // probe that found it taking them stands on a recent answer: any statement answers a `select 1`,
  // none says whether writes are refused (an API-only process may serve reads from a standby).
  const readOnlySeen = new Map<string, number | null>()
  for (const name of o.takingWrites ?? []) readOnlySeen.set(name, null)
  // A database's encoding, when its schema read found it not UTF8: fixed at its creation, so a
  // warning for as long as the process runs, read again with the schema, whatever else is wrong.
  const notUtf8 = new Map(Object.entries(o.notUtf8 ?? {}))
  const warningOf = (d: MonitoredDatabase) => {
    const encoding = notUtf8.get(d.name)
    const said = [
      d.drainer ? transportWarning() : null,
      encoding === undefined ? null : notUtf8Warning(encoding),
    ].filter((w) => w !== null)
    return said.length > 0 ? said.join('; ') : null
  }

  async function probe(d: MonitoredDatabase): Promise<DatabaseHealth> {
    const status = d.drainer?.status()
    const report: DatabaseHealth = {
      name: d.name,
      reachable: false,
      migrated: false,
      worker: status ? (status.running ? 'running' : 'stopped') : 'disabled',
      listener: d.listener ? d.listener.state() : 'disabled',
      lastLoopAt: status?.lastLoopAt ?? null,
      problem: null,
      // Shown whatever else is wrong: the database's state does not change it.
      warning: warningOf(d),
    }
    const checkedAt = schemaCheckedAt.get(d.name)
    const refusedSince = d.writes?.refusingSince() ?? null
    let readOnlySince: number | null = null
    try {
      // The probe's one statement says whether the session refuses writes (a hot standby, a primary
      // demoted by a failover under way), so a standby is unready from the first probe, and one that
      // took writes again ends the refused writes' episode.
      let refuses: boolean | null = null
      if (checkedAt === undefined || elapsed() - checkedAt >= SCHEMA_RECHECK_MS) {
        schemaCheckedAt.delete(d.name)
        // A lock in the way fails the read within the probe's wait (lock_timeout, set local to it),
        // not after it: the statement would hold the worker's session or connection meanwhile.
        const schema = assertSchemaCurrentAndWrites(d.statements, d.name, undefined, {
          lockTimeoutMs: timeoutMs / 2,
        })
        const read = await waitAtMost(systemClock, schema, timeoutMs)
        refuses = read.refusesWrites
        if (read.encoding !== null && read.encoding !== 'UTF8') notUtf8.set(d.name, read.encoding)
        report.warning = warningOf(d)
        schemaCheckedAt.set(d.name, elapsed())
      } else if (
        // With the session lost (reconnecting, stopped), only a statement of the probe's own says
        // whether the database is reachable; at its first connect (connecting: a start, nothing
        // lost) a recent answer does, as where it holds: the start's probes, 503 until it listens,
        // then waited behind the pool connection's prime. With writes refused (or not asked yet),
        // only a statement says whether it takes them.
        !(sessionHolds(report.listener) || report.listener === 'connecting') ||
        !answeredRecently(d.answeredAt?.() ?? null) ||
        readOnlySeen.get(d.name) !== null ||
        refusedSince !== null
      ) {
        refuses = await waitAtMost(systemClock, sessionRefusesWrites(d.statements), timeoutMs)
      }
      if (refuses) {
        const seen = readOnlySeen.get(d.name) ?? elapsed()
        readOnlySeen.set(d.name, seen)
        readOnlySince = Math.min(seen, refusedSince ?? seen)
      } else if (refuses === false) {
        readOnlySeen.set(d.name, null)
        if (refusedSince !== null) d.writes?.accepted()
      }
      report.reachable = true
      report.migrated = true
    } catch (e) {
      if ((e as { code?: unknown } | null)?.code === LOCK_TIMEOUT_SQLSTATE) {
        report.reachable = true
        report.problem = await lockedSchemaProblem(d.statements, timeoutMs / 2)
        return report
      }
      if (!answered(e)) {
        schemaCheckedAt.delete(d.name)
        readOnlySeen.delete(d.name)
        report.problem = `database unreachable (${unreachableCause(e, timeoutMs)})`
        return report
      }
      report.reachable = true
      report.problem = answeredProblem(e)
      return report
    }
    const transport =
      d.drainer && problemMakes === 'unready' ? (o.transportProblem?.() ?? null) : null
    // Read after the probe's await: a claim may have succeeded or failed meanwhile.
    const failing = d.drainer?.status().claimsFailing ?? null
    if (report.worker === 'stopped') report.problem = 'worker loop is not running'
    else if (readOnlySince !== null) {
      // Before failing claims: the cause they would name by its SQLSTATE only, and an API alone has none.
      const s = Math.max(0, Math.round((elapsed() - readOnlySince) / 1000))
      report.problem = `the database refuses writes (read-only: a hot standby, or a failover under way) for ${s}s: nothing can be claimed or enqueued; check that its URL names the primary`
    } else if (claimsFailingLongEnough(failing, o.claimsFailing)) {
      // A wait given up reads who holds the outbox's lock: a second statement, only then.
      report.problem = await failingClaimsProblem(failing, d.statements, timeoutMs / 2)
    } else if (transport) report.problem = transport
    else if (!sessionHolds(report.listener)) {
      const failure = d.listener?.connectFailure() ?? null
      report.problem = failure
        ? listenerProblem(report.listener, failure.err, failure.urlVariable)
        : `listener is ${report.listener}`
    }
    return report
  }

  return {
    readiness: () => Promise.all(o.databases.map(probe)),
    listenerStates: () =>
      o.databases.map((d) => ({
        name: d.name,
        listener: d.listener ? d.listener.state() : ('disabled' as const),
      })),
    liveness: () => loopLiveness(o.databases, o.wedgedAfterMs),
  }
}
