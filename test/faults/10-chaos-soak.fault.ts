// Scenario 10: faults combined at random moments (seeded, replayable): nothing lost, nothing sent twice beyond the promise.
//
// Three worker processes and an API process on one database, against the strict Graph fake
// answering a random mix (202, 429 and 503 with Retry-After, 500, hung requests, and accepted
// messages whose answer is lost: a hang, a gateway 504, a cut connection), while the harness, at
// random moments, kills (SIGKILL) or stops (SIGTERM) a worker and starts it again, stops or crashes
// Postgres and starts it again, terminates the mailers' backends, cuts every connection to Graph,
// enqueues (SQL, and the API with an Idempotency-Key it repeats after a lost answer), and cancels
// and retries rows through the API. Then the faults stop, every row must reach a final state, and
// the database, the fake's record of accepted messages and the harness's own log must agree.
// The fake never holds more sendMail requests at once than GRAPH_MAX_CONCURRENCY, but where the
// README allows it (chaos/send-peak.ts).
//
// The seed is printed; CHAOS_SEED=<seed> replays the same choices (the timing of real processes
// cannot be replayed). CHAOS_MODE=lookup|resend|hold overrides the ambiguous-send handling the seed
// picks; CHAOS_MS the length of the chaos (default 30 s); CHAOS_WORKERS the worker processes
// (default 3); CHAOS_HARSH=1 the harsh mix (more Postgres crashes, some just after an enqueue,
// listener sessions killed, more answers lost); CHAOS_OLDER_BINARY=<path> an older release's binary
// on the odd worker slots (a rolling deploy: chaos/settings.ts); CHAOS_PAUSES=1 the pause mix
// (mailboxes throttled alone, MAIL_FROM's rows and owed probes, workers of two configurations, the
// rows a probe waits for cancelled and retried) and its checks (chaos/probe-checks.ts), the owed
// probe's judged on the exact log test-only triggers write in the run's database (chaos/pacing-log.ts).
// CHAOS_SLOW_DB=1 the slow-database shape (each worker slot through its own proxy, slowed in bursts:
// chaos/slow-database.ts), its reach counted on the [fault] line (chaos/lease-log-counts.ts).
// CHAOS_LISTEN_MODE=poll|mixed workers with LISTEN_MODE=poll, every one or the even slots';
// CHAOS_WORKER_ROLE=1 the mailers log in as a role holding the deploy guide's grants alone
// (chaos/worker-role.ts), and a log line naming a refused right is a problem.
// CHAOS_GRAPH_TIMEOUT_SECONDS=N the workers' Graph request timeout (2 s unset), the lease and the
// chaos's lease-long durations following it (chaos/settings.ts): at 4 or more a send that met a 401
// can outlast its new token's request turning slow and go back token_slow.
// Every run prints, besides its report line, a line of what it did to the workers' Graph tokens and
// what came of it (chaos/token-counts.ts): whether it met the token paths at all.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { acceptedNotSent } from './chaos/accepted-not-sent.ts'
import { Background } from './chaos/background.ts'
import { calm } from './chaos/calm.ts'
import { leaveEvidence } from './chaos/evidence.ts'
import { chaosGraphAnswers, HARSH_SEND_WEIGHTS, SEND_WEIGHTS } from './chaos/graph-mix.ts'
import { leaseLogCounts } from './chaos/lease-log-counts.ts'
import { startMailers } from './chaos/mailers.ts'
import { readOutcome } from './chaos/outcome.ts'
import { installPacingLog, readPacingLog } from './chaos/pacing-log.ts'
import { checkOwedProbes } from './chaos/probe-checks.ts'
import { prng } from './chaos/random.ts'
import { newChaosRecord } from './chaos/record.ts'
import { checkRows } from './chaos/row-checks.ts'
import { runChaos } from './chaos/run-chaos.ts'
import {
  ACTIONS,
  ChaosSchedule,
  HARSH_ACTIONS,
  PAUSE_ACTIONS,
  SLOW_DB_ACTIONS,
} from './chaos/schedule.ts'
import { SEND_PEAK_WINDOW_MS, sendPeak, sendPeakProblems } from './chaos/send-peak.ts'
import {
  GRACE_SECONDS,
  GRAPH_TIMEOUT_SECONDS,
  HARSH,
  LEASE_SECONDS,
  LISTEN_SHAPE,
  MAX_ATTEMPTS,
  MODES,
  type Mode,
  OLDER_BINARY,
  PAUSES,
  REJECTED,
  SLOW_DB,
  WORKER_ROLE,
  WORKERS,
} from './chaos/settings.ts'
import { checkSlots } from './chaos/slot-checks.ts'
import { startSlowDatabaseProxies } from './chaos/slow-database.ts'
import { reportChaos } from './chaos/summary.ts'
import { tokenCounts } from './chaos/token-counts.ts'
import { createWorkerRole, refusedRights, roleUnused } from './chaos/worker-role.ts'
import {
  cleanupAll,
  type Database,
  FAST,
  type Graph,
  type Mailer,
  onCleanup,
  ownCluster,
  report,
  startGraph,
} from './harness.ts'
import { test } from './kept-evidence.ts'

afterAll(cleanupAll)

const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const MODE: Mode = (process.env.CHAOS_MODE as Mode | undefined) ?? MODES[SEED % MODES.length]!
// Shared by every worker: the fake must never hold more sends than this at once (chaos/send-peak.ts).
const GRAPH_MAX_CONCURRENCY = 6
const CHAOS_MS = Number(process.env.CHAOS_MS ?? 30_000)
// The run's own bound (over --timeout): the chaos, then its start, the calm (90 s at most), the checks.
const TIMEOUT_MS = CHAOS_MS + 150_000
setDefaultTimeout(TIMEOUT_MS)
// Named in the test's title and its replay line when not the default shape.
const TIMEOUT_SET = GRAPH_TIMEOUT_SECONDS !== Number(FAST.GRAPH_REQUEST_TIMEOUT_SECONDS)
const SHAPE = `${HARSH ? ', harsh' : ''}${PAUSES ? ', pauses' : ''}${SLOW_DB ? ', slow database' : ''}${WORKERS === 3 ? '' : `, ${WORKERS} workers`}${OLDER_BINARY ? ', older binary on odd slots' : ''}${LISTEN_SHAPE === 'poll' ? ', polling workers' : ''}${LISTEN_SHAPE === 'mixed' ? ', polling workers on even slots' : ''}${WORKER_ROLE ? ', worker role' : ''}${TIMEOUT_SET ? `, Graph timeout ${GRAPH_TIMEOUT_SECONDS} s` : ''}`
const REPLAY = `CHAOS_SEED=${SEED} CHAOS_MODE=${MODE}${HARSH ? ' CHAOS_HARSH=1' : ''}${PAUSES ? ' CHAOS_PAUSES=1' : ''}${SLOW_DB ? ' CHAOS_SLOW_DB=1' : ''}${WORKERS === 3 ? '' : ` CHAOS_WORKERS=${WORKERS}`}${OLDER_BINARY ? ` CHAOS_OLDER_BINARY=${OLDER_BINARY}` : ''}${LISTEN_SHAPE ? ` CHAOS_LISTEN_MODE=${LISTEN_SHAPE}` : ''}${WORKER_ROLE ? ' CHAOS_WORKER_ROLE=1' : ''}${TIMEOUT_SET ? ` CHAOS_GRAPH_TIMEOUT_SECONDS=${GRAPH_TIMEOUT_SECONDS}` : ''} CHAOS_MS=${CHAOS_MS}`
// Debug: the workers then log each accepted send and each settlement by id, the evidence a failure
// is explained from. CHAOS_EVIDENCE_DIR: where a failing run (every run with CHAOS_EVIDENCE=always)
// leaves its logs and tables.
const LOG_LEVEL = process.env.CHAOS_LOG_LEVEL ?? 'debug'
const EVIDENCE_DIR =
  process.env.CHAOS_EVIDENCE_DIR ?? join(tmpdir(), `outbox-chaos-${SEED}-${MODE}-${Date.now()}`)

// The run's record (the harness's choices, problems, offending rows) and what it started, for its
// evidence: kept when a check finds a problem, the run throws or it is still going at its bound.
const record = newChaosRecord()
let started: { db: Database; graph: Graph; mailers: Mailer[] } | undefined
async function keepChaosEvidence(): Promise<string> {
  if (!started) return '(nothing started yet)'
  const { db, graph, mailers } = started
  await leaveEvidence(EVIDENCE_DIR, {
    scenario: '10 chaos soak',
    db,
    graph: graph.fake,
    mailers,
    timeline: record.timeline,
    ids: [...record.offending],
    ...(PAUSES && { extra: { 'pacing-log': await readPacingLog(db).catch(String) } }),
  })
  return EVIDENCE_DIR
}

test(
  `chaos soak (seed ${SEED}, ${MODE}${SHAPE}): every row final, none lost, duplicates only as promised`,
  soak,
  TIMEOUT_MS,
  keepChaosEvidence,
)

async function soak() {
  console.log(
    `[fault] 10 chaos soak: seed=${SEED} mode=${MODE}${SHAPE} (replay: ${REPLAY} bun test ./test/faults/10-chaos-soak.fault.ts)`,
  )
  // Two streams: the harness's choices, and Graph's answers (drawn as requests arrive).
  // The pause mix and the slow database add their actions to the default or the harsh one.
  const weights = HARSH ? HARSH_ACTIONS : ACTIONS
  const schedule = new ChaosSchedule(
    prng(SEED),
    {
      ...weights,
      ...(PAUSES && {
        throttleMailbox: PAUSE_ACTIONS.throttleMailbox,
        probeRowCommand: PAUSE_ACTIONS.probeRowCommand,
      }),
      ...(SLOW_DB && { slowDatabase: SLOW_DB_ACTIONS.slowDatabase }),
    },
    PAUSES,
  )
  const mailboxThrottles = new Map<string, { until: number; retryAfterS: number }>()
  const graphAnswers = chaosGraphAnswers(
    prng(SEED ^ 0x5bd1e995),
    HARSH ? HARSH_SEND_WEIGHTS : SEND_WEIGHTS,
    mailboxThrottles,
  )
  const cluster = await ownCluster('chaos', { crashable: true })
  const db = cluster.db
  // The owed-probe check reads the exact record of every pacing change and last check.
  if (PAUSES) await installPacingLog(db)
  const graph = await startGraph(
    { mailRead: MODE === 'lookup', concurrencyLimit: 100, rejectRecipients: [REJECTED] },
    { cuttable: true },
  )
  graph.fake.setFaults(graphAnswers)
  const role = WORKER_ROLE ? await createWorkerRole(cluster, db) : null
  const env = {
    ...(role ? role.env(db.url) : { DATABASE_URL: db.url }),
    ...graph.env,
    ...FAST,
    GRAPH_REQUEST_TIMEOUT_SECONDS: String(GRAPH_TIMEOUT_SECONDS),
    LEASE_SECONDS: String(LEASE_SECONDS),
    LOG_LEVEL,
    WORKER_CONCURRENCY: '8',
    GRAPH_MAX_CONCURRENCY: String(GRAPH_MAX_CONCURRENCY),
    MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
    GRAPH_MAILBOX_LOOKUP: String(MODE === 'lookup'),
    AMBIGUOUS_SEND_POLICY: MODE === 'hold' ? 'hold' : 'resend',
  }
  // The workers only: the harness and the API process reach Postgres directly.
  const slowDb = SLOW_DB ? await startSlowDatabaseProxies(db.url, WORKERS) : null
  if (slowDb) onCleanup(async () => slowDb.close())
  const slotEnv = (slot: number): Record<string, string> => {
    const url = slowDb ? slowDb.urlOf(slot) : db.url
    if (role) return role.env(url)
    return slowDb ? { DATABASE_URL: url } : {}
  }
  const mailers = await startMailers(env, record, slotEnv)
  // Every mailer ready: its pool's sessions are open (the calm stops them all before the checks).
  if (WORKER_ROLE) record.problems.push(...(await roleUnused(db)))
  started = { db, graph, mailers: mailers.all }
  const run = {
    seed: SEED,
    cluster,
    db,
    graph,
    graphAnswers,
    mailboxThrottles,
    mailers,
    record,
    background: new Background(record.problems),
    pgDown: false,
    busyWorkers: new Set<number>(),
    slowDb,
  }

  await runChaos(run, schedule, CHAOS_MS)
  const settleMs = await calm(run)

  const outcome = await readOutcome(db, graph)
  const olderPids = new Set(
    mailers.all.filter((m) => m.name.includes('-older')).map((m) => m.proc.pid),
  )
  const findings = checkRows(MODE, outcome, record, olderPids)
  // Graph took these and the outbox does not say sent: each named (the checks above judge them).
  const unsent = await acceptedNotSent(db, graph, outcome, record.timeline)
  for (const line of unsent.lines) console.log(`[fault] accepted, not sent: ${line}`)
  await checkSlots(db, record, mailers.all)
  const peak = sendPeak(
    graph.fake.requests,
    GRAPH_MAX_CONCURRENCY,
    record.timeline,
    Date.now(),
    SEND_PEAK_WINDOW_MS,
  )
  for (const e of peak.excesses)
    console.log(
      `[fault] ${e.open} sends open at ${new Date(e.at).toISOString()} after:\n  ${e.before.join('\n  ')}`,
    )
  record.problems.push(...sendPeakProblems(peak, GRAPH_MAX_CONCURRENCY, OLDER_BINARY !== undefined))
  const probes = PAUSES ? await checkOwedProbes(db, graph, mailers, record) : {}
  reportChaos({
    seed: SEED,
    mode: MODE,
    outcome,
    findings,
    graph,
    figures: {
      ...record.figures,
      ...probes,
      ...leaseLogCounts(mailers.all),
      sendPeak: peak.peak,
      sendExcesses: peak.excesses.length,
      acceptedNotSent: unsent.count,
    },
    settleMs,
  })
  // Whether the run met the token paths: kept by a passing run too (chaos/token-counts.ts).
  report(`10 chaos soak tokens`, tokenCounts(record, graph.fake, outcome.historyOf, mailers.all))

  const { problems } = record
  if (WORKER_ROLE) problems.push(...refusedRights(mailers.all))
  if (problems.length > 0) {
    console.log(`[fault] 10 chaos soak seed=${SEED} mode=${MODE}: ${problems.length} problems`)
    for (const p of problems) console.log(`  ${p}`)
  }
  // A problem fails the run below, which keeps the evidence then (keepChaosEvidence).
  if (process.env.CHAOS_EVIDENCE === 'always' && problems.length === 0) await keepChaosEvidence()
  expect(problems).toEqual([])
  expect(outcome.rows.length).toBeGreaterThan(0)
}
