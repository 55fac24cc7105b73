// Status report: each database's reading judged (ok, attention, schema, permission, unreachable) with its reasons, and the exit code; status-fields.ts lays it out in the --json shape.
import { loginRefusal } from '../db/login-refusal.ts'
import type { SchemaState } from '../db/schema-state.ts'
import { PERMISSION_DENIED_SQLSTATE } from '../db/sqlstate.ts'
import { withUnreachableAdvice } from '../db/unreachable-cause.ts'
import { EXIT } from '../errors.ts'
import { CREDENTIAL_FIX, credentialRefusalWords } from './credential-refusal-words.ts'
import type { DatabaseReading } from './database-status.ts'
import { outageReason } from './outage-reason.ts'
import { statusFields } from './status-fields.ts'
import type { DatabaseStatus, Health, Thresholds } from './status-shape.ts'

/**
 * Exit code of each health; the worst database decides (unreachable, then permission, then schema,
 * then attention).
 */
const HEALTH_EXIT: Readonly<Record<Health, number>> = {
  ok: EXIT.ok,
  attention: EXIT.attention,
  schema: EXIT.schema,
  permission: EXIT.permission,
  unreachable: EXIT.unreachable,
}
const SEVERITY: readonly Health[] = ['ok', 'attention', 'schema', 'permission', 'unreachable']
/** --max-send-gap's default: an outage is told within 5 minutes, where --max-pending-age's 600 s waits 10. */
export const DEFAULT_MAX_SEND_GAP_SECONDS = 300
/** What a role needs for status to read everything (README, Status). */
const GRANTS = 'CONNECT on the database, USAGE on schema mailer and SELECT on its tables'

export function judge(
  r: DatabaseReading,
  t: Thresholds,
  mask: (s: string) => string,
): DatabaseStatus {
  const reasons: string[] = []
  let health: Health = 'ok'
  const raise = (h: Health, reason: string) => {
    if (SEVERITY.indexOf(h) > SEVERITY.indexOf(health)) health = h
    reasons.push(reason)
  }
  const error = r.error ? { code: r.error.code, message: mask(r.error.message) } : null
  if (error?.code === PERMISSION_DENIED_SQLSTATE) {
    raise(
      'permission',
      `the role in ${mask(r.url)} may not read the mailer schema: ${error.code}: ${error.message}: grant it ${GRANTS}`,
    )
  } else if (!r.reachable) {
    // A login the server refused (a password, a role, a database name) is mended in the URL or the
    // server, not the network: the cause and what to check follow the server's words.
    const login = r.error ? loginRefusal(r.error) : null
    const advice = login ? `: ${login.cause}: ${login.advice}` : ''
    // A refused port or a host that does not resolve: what it means, as check-config and migrate say.
    const said = withUnreachableAdvice(`${error?.code}: ${error?.message}`, r.error)
    raise('unreachable', `cannot read (${mask(r.url)}): ${said}${advice}`)
  } else if (error) {
    // Reached, the schema not read: a lock in the way (named, with who holds it), or a read the
    // server cancelled at --timeout.
    raise('attention', `schema not read: ${error.code}: ${error.message}`)
  } else if (r.schema && r.schema.verdict !== 'current') {
    raise('schema', schemaReason(r.schema))
  }
  if (r.readOnly) {
    raise(
      'attention',
      'the database takes no writes (a hot standby, or set read-only): no row can be claimed, sent or enqueued; point the URL at the primary',
    )
  }
  const failed = r.unread.filter((u) => u.error.code !== 'skipped')
  for (const u of failed) {
    const reason = `${u.section} not read: ${u.error.code}: ${mask(u.error.message)}`
    if (u.error.code === PERMISSION_DENIED_SQLSTATE) {
      raise('permission', `${reason}: grant the role ${GRANTS}`)
    } else {
      raise('attention', reason)
    }
  }
  const skipped = r.unread.filter((u) => u.error.code === 'skipped').map((u) => u.section)
  if (skipped.length > 0) {
    raise('attention', `${skipped.join(', ')} not read after that (so as to end in time)`)
  }
  const age = r.stats?.oldestPendingAgeSeconds ?? null
  if (age !== null && age > t.maxPendingAgeSeconds) {
    raise(
      'attention',
      `the oldest due pending row has waited ${Math.round(age)} s (more than ${t.maxPendingAgeSeconds} s)`,
    )
  }
  // A refusal does not end by itself, as a throttle does: a fix (MAIL_FROM, the mailbox, the app's
  // access) is owed. Its age says nothing: the rows a claim met are given back to the pause's end,
  // not due (with one row waiting, all of them), so the oldest due age may read none throughout.
  // Counted as /v1/stats counts it (one statement: refused-pause-rows.ts): a refused pause no row
  // sends from is met again by none, and ends by itself (SENDER_MAILBOX_PAUSE_MS, or Graph's
  // Retry-After): no attention.
  const refused = r.stats?.pausedMailboxesRefused ?? 0
  const waiting = r.stats?.refusedMailboxPending ?? 0
  if (refused > 0 && waiting > 0) {
    raise(
      'attention',
      `Graph refuses ${refused} sender mailbox(es), each paused meanwhile, and ${waiting} pending row(s) send from it: they wait until MAIL_FROM or the mailbox is fixed (the workers’ log and /readyz name Graph’s code; GET /v1/outbox?status=pending lists the rows)`,
    )
  }
  // A refused credential stops every send of the workers that hold it until someone acts (a new
  // secret or certificate, the app registration mended): its rows' age says so only after
  // --max-pending-age, and not at all for rows given back to a later try. No row pending: nothing
  // waits on it (the table's line still names it).
  const credential = r.stats?.credentialRefused ?? null
  const pending = r.stats?.counts.pending ?? 0
  if (credential && credential.workers > 0 && pending > 0) {
    raise(
      'attention',
      `${credentialRefusalWords(credential)}, and ${pending} pending row(s) wait: ${CREDENTIAL_FIX}`,
    )
  }
  const outage = outageReason(r, t.maxSendGapSeconds ?? DEFAULT_MAX_SEND_GAP_SECONDS)
  if (outage) raise('attention', outage)
  const p = r.presence
  if (p && p.overdueLeases > 0) {
    raise(
      'attention',
      `${p.overdueLeases} claimed row(s) whose lease ended over ${Math.round(p.overdueAfterSeconds)} s ago and that no worker took back: is any worker running?`,
    )
  }
  if (p && age !== null && p.liveWorkers === 0) {
    raise(
      'attention',
      `rows are due and no worker has beaten in the registry within twice its LEASE_SECONDS (${2 * t.leaseSeconds} s for one that does not note it)`,
    )
  }
  return statusFields(r, { health, reasons, error })
}

function schemaReason(s: SchemaState): string {
  const at = `schema ${s.database ?? 'none'}, this binary ${s.binary}`
  switch (s.verdict) {
    case 'missing':
      return `no mailer schema (${at}): run \`outbox-mailer migrate\``
    case 'behind':
      return `schema behind (${at}; lacks ${s.missing.join(', ')}): run \`outbox-mailer migrate\``
    case 'ahead':
      return `schema ahead (${at}; has ${s.newer.join(', ')} from a newer release that older binaries cannot run on): deploy the newer outbox-mailer`
    default:
      return `an applied migration differs from this binary's copy (${at}): restore the file, add a new one`
  }
}

export function exitCodeOf(databases: readonly DatabaseStatus[]): number {
  const worst = databases.reduce<Health>(
    (w, d) => (SEVERITY.indexOf(d.health) > SEVERITY.indexOf(w) ? d.health : w),
    'ok',
  )
  return HEALTH_EXIT[worst]
}
