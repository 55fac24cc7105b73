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
//
// The seed is printed; CHAOS_SEED=<seed> replays the same choices (the timing of real processes
// cannot be replayed). CHAOS_MODE=lookup|resend|hold overrides the ambiguous-send handling the seed
// picks; CHAOS_MS the length of the chaos (default 30 s).
import { afterAll, expect, test } from 'bun:test'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FakeGraph, GraphFault } from '../support/fake-graph.ts'
import {
  cleanupAll,
  type Database,
  FAST,
  type Mailer,
  ownCluster,
  report,
  seconds,
  spawnMailer,
  startGraph,
  within,
} from './harness.ts'

afterAll(cleanupAll)

const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const MODES = ['lookup', 'resend', 'hold'] as const
type Mode = (typeof MODES)[number]
const MODE: Mode = (process.env.CHAOS_MODE as Mode | undefined) ?? MODES[SEED % MODES.length]!
const CHAOS_MS = Number(process.env.CHAOS_MS ?? 30_000)
// Debug: the workers then log each accepted send and each settlement by id, the evidence a failure
// is explained from. CHAOS_EVIDENCE_DIR: where a failing run (every run with CHAOS_EVIDENCE=always)
// leaves its logs and tables.
const LOG_LEVEL = process.env.CHAOS_LOG_LEVEL ?? 'debug'
const EVIDENCE_DIR =
  process.env.CHAOS_EVIDENCE_DIR ?? join(tmpdir(), `outbox-chaos-${SEED}-${MODE}-${Date.now()}`)

const WORKERS = 3
const MAX_ATTEMPTS = 6
const GRACE_SECONDS = 3
const SENDERS = ['a@contoso.example', 'b@contoso.example', 'c@contoso.example']
const REJECTED = 'nobody@example.invalid'
// The Graph fake's answers are slowed by up to this much at random moments (a send in flight longer).
const MAX_LATENCY_MS = 400
// A send let through just before its expiry or cancel reaches Graph later: the worker sends it
// within its request's deadline, and the fake, which like Graph takes a message whose client has
// gone, accepts it up to its latency after that; a second more for the scheduling of three
// processes on a loaded machine (worker send → acceptance measured up to 1.5 s for answered sends).
// Acceptances within this much of the moment are not late.
const SLACK_MS = Number(FAST.GRAPH_REQUEST_TIMEOUT_SECONDS) * 1000 + MAX_LATENCY_MS + 1_000

/** mulberry32: small, seedable, good enough to pick faults. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** Picks a key of `weights` with probability proportional to its weight. */
function pick<K extends string>(r: () => number, weights: Record<K, number>): K {
  const entries = Object.entries(weights) as [K, number][]
  let x = r() * entries.reduce((s, [, w]) => s + w, 0)
  for (const [k, w] of entries) {
    x -= w
    if (x < 0) return k
  }
  return entries[entries.length - 1]![0]
}

const SEND_FAULTS: Record<string, GraphFault | undefined> = {
  ok: undefined,
  throttled: { status: 429, code: 'ApplicationThrottled', retryAfter: '1' },
  unavailable: { status: 503, code: 'ServiceUnavailable', retryAfter: '1' },
  error: { status: 500, code: 'InternalServerError', message: 'Internal server error' },
  hang: 'hang',
  acceptThenHang: 'accept_then_hang',
  acceptThen504: 'accept_then_504',
  acceptWithRetryAfter: 'accept_with_retry_after',
}
const SEND_WEIGHTS = {
  ok: 60,
  throttled: 8,
  unavailable: 6,
  error: 5,
  hang: 5,
  acceptThenHang: 7,
  acceptThen504: 4,
  acceptWithRetryAfter: 3,
}

const ACTIONS = {
  enqueueSql: 22,
  enqueueApi: 8,
  kill: 9,
  term: 7,
  restartPostgres: 3,
  crashPostgres: 3,
  terminateBackends: 7,
  cutGraph: 9,
  cancel: 12,
  retry: 8,
  latency: 4,
  revokeToken: 3,
}

test(`chaos soak (seed ${SEED}, ${MODE}): every row final, none lost, duplicates only as promised`, async () => {
  console.log(
    `[fault] 10 chaos soak: seed=${SEED} mode=${MODE} (replay: CHAOS_SEED=${SEED} CHAOS_MODE=${MODE} bun test --timeout 180000 ./test/faults/10-chaos-soak.fault.ts)`,
  )
  const rng = prng(SEED)
  const graphRng = prng(SEED ^ 0x5bd1e995)
  const cluster = await ownCluster('chaos', { crashable: true })
  const db = cluster.db
  const graph = await startGraph(
    { mailRead: MODE === 'lookup', concurrencyLimit: 100, rejectRecipients: [REJECTED] },
    { cuttable: true },
  )
  const chaosFaults = {
    latencyMs: 10,
    pickSendMail: () => SEND_FAULTS[pick(graphRng, SEND_WEIGHTS)],
    pickLookup: () => {
      const x = graphRng()
      if (x < 0.08) return { status: 503, code: 'ServiceUnavailable', retryAfter: '1' }
      if (x < 0.12) return { status: 500, code: 'InternalServerError' }
      return undefined
    },
  }
  graph.fake.setFaults(chaosFaults)
  const env = {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
    LOG_LEVEL,
    WORKER_CONCURRENCY: '8',
    GRAPH_MAX_CONCURRENCY: '6',
    MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
    GRAPH_MAILBOX_LOOKUP: String(MODE === 'lookup'),
    AMBIGUOUS_SEND_POLICY: MODE === 'hold' ? 'hold' : 'resend',
  }

  // ---------------------------------------------------------------- the harness's own record
  const problems: string[] = []
  /** Rows a check found wrong: each is explained in full when the run fails. */
  const offending = new Set<string>()
  /** What the harness did and when (Date.now(), as the fake's times; the logs are ISO UTC). */
  const timeline: { at: number; what: string; ids?: string[] }[] = []
  const note = (what: string, ids?: string[]) =>
    timeline.push({ at: Date.now(), what, ...(ids ? { ids } : {}) })
  const known = new Set<string>()
  /** Rows whose cancel answered 200/202, and when. */
  const cancelledAt = new Map<string, number>()
  /** Rows a cancel was asked for, whatever the answer. */
  const cancelAsked = new Set<string>()
  /** Rows a retry answered 200 for, and when (each time). */
  const retriedAt = new Map<string, number[]>()
  const expiresAtOf = new Map<string, number>()
  const figures = {
    enqueued: 0,
    kills: 0,
    terms: 0,
    pgRestarts: 0,
    pgCrashes: 0,
    terminated: 0,
    cuts: 0,
    cancels: 0,
    retries: 0,
    revokes: 0,
    /** Cancels and retries through the API that got no answer (timed out) or a 5xx. */
    unanswered: 0,
  }
  const all: Mailer[] = []
  /** Processes that exited 0 after SIGTERM, with when their stop began and ended. */
  const gracefulPids = new Map<number, { from: number; to: number }>()
  /** When Postgres was down (to: Infinity while it still is). */
  const pgDownSpans: { from: number; to: number }[] = []
  const workers: (Mailer | null)[] = []
  let spawned = 0
  const spawnWorker = async (slot: number) => {
    const m = await spawnMailer(`chaos-w${slot}-${spawned++}`, env, { role: 'worker' })
    note(`spawned ${m.name} (pid ${m.proc.pid})`)
    all.push(m)
    workers[slot] = m
    return m
  }
  for (let i = 0; i < WORKERS; i++) await spawnWorker(i)
  const api = await spawnMailer('chaos-api', env, { role: 'api' })
  all.push(api)
  await Promise.all(all.map((m) => m.waitReady()))

  let pgDown = false
  const background = new Set<Promise<void>>()
  const inBackground = (f: () => Promise<void>) => {
    const p = f()
      .catch((e) => {
        problems.push(`background task failed: ${String(e)}`)
      })
      .finally(() => background.delete(p))
    background.add(p)
  }
  const busyWorkers = new Set<number>()

  const stopWorker = async (slot: number, asked: 'SIGKILL' | 'SIGTERM', downMs: number) => {
    let signal = asked
    const m = workers[slot]!
    workers[slot] = null
    const t0 = performance.now()
    // A process still starting has no signal handlers yet: SIGTERM ends it like SIGKILL (143).
    if (signal === 'SIGTERM' && !m.logTail(1_000).includes('http listening')) signal = 'SIGKILL'
    note(`${signal} ${m.name} (pid ${m.proc.pid})`)
    m.proc.kill(signal)
    const code = await Promise.race([
      m.exited,
      Bun.sleep((GRACE_SECONDS + 10) * 1000).then(() => 'hung' as const),
    ])
    if (signal === 'SIGTERM') {
      if (code === 'hung') {
        problems.push(`${m.name} did not exit within ${GRACE_SECONDS + 10} s of SIGTERM`)
        m.proc.kill('SIGKILL')
        await m.exited
      } else if (code !== 0) {
        problems.push(
          `${m.name} exited ${code} after SIGTERM (${seconds(performance.now() - t0)})\n${m.logTail(10)}`,
        )
      } else gracefulPids.set(m.proc.pid, { from: t0, to: performance.now() })
    }
    note(`${m.name} exited ${code}`)
    await Bun.sleep(downMs)
    await spawnWorker(slot)
  }

  const enqueueSql = async (n: number) => {
    const batch = Array.from({ length: n }, () => rowSpec(rng))
    const rows = await db.q<{ id: string; expires: string | null }>(
      `select mailer.enqueue_email(m -> 'message', m -> 'options')::text as id,
              m -> 'options' ->> 'expiresAt' as expires
         from jsonb_array_elements($1::jsonb) m`,
      [JSON.stringify(batch)],
    )
    for (const r of rows) {
      known.add(r.id)
      if (r.expires) expiresAtOf.set(r.id, Date.parse(r.expires))
    }
    note(
      'enqueued (SQL)',
      rows.map((r) => r.id),
    )
    figures.enqueued += rows.length
  }

  const enqueueApi = async (spec: ReturnType<typeof rowSpec>, key: string) => {
    const ids = new Set<string>()
    for (let i = 0; i < 3; i++) {
      const res = await api
        .api('/v1/outbox', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify(spec),
          signal: AbortSignal.timeout(5_000),
        })
        .catch(() => null)
      if (res && (res.status === 201 || res.status === 200)) {
        const { id } = (await res.json()) as { id: string }
        note(`enqueued (API, key ${key}): ${res.status}`, [id])
        ids.add(id)
        known.add(id)
        if (spec.options.expiresAt) expiresAtOf.set(id, Date.parse(spec.options.expiresAt))
      }
    }
    if (ids.size > 1) problems.push(`Idempotency-Key ${key} answered different ids: ${[...ids]}`)
    if (ids.size > 0) figures.enqueued++
  }

  // ---------------------------------------------------------------- chaos
  const t0 = performance.now()
  let apiKeys = 0
  while (performance.now() - t0 < CHAOS_MS) {
    // Pacing of the faults themselves (not a wait for an effect).
    await Bun.sleep(100 + Math.floor(rng() * 600))
    const action = pick(rng, ACTIONS)
    const slot = Math.floor(rng() * WORKERS)
    const downMs = Math.floor(rng() * 2_000)
    try {
      switch (action) {
        case 'enqueueSql':
          if (!pgDown) await enqueueSql(1 + Math.floor(rng() * 25))
          break
        case 'enqueueApi':
          if (!pgDown) await enqueueApi(rowSpec(rng), `chaos-${SEED}-${apiKeys++}`)
          break
        case 'kill':
        case 'term':
          if (busyWorkers.has(slot) || !workers[slot]) break
          busyWorkers.add(slot)
          figures[action === 'kill' ? 'kills' : 'terms']++
          inBackground(() =>
            stopWorker(slot, action === 'kill' ? 'SIGKILL' : 'SIGTERM', downMs).finally(() =>
              busyWorkers.delete(slot),
            ),
          )
          break
        case 'restartPostgres':
        case 'crashPostgres': {
          if (pgDown) break
          pgDown = true
          figures[action === 'crashPostgres' ? 'pgCrashes' : 'pgRestarts']++
          // Sometimes longer than a lease (LEASE_SECONDS 5): leases run out while nobody can write.
          const outageMs = 500 + downMs * (rng() < 0.3 ? 3 : 1)
          inBackground(async () => {
            const span = { from: performance.now(), to: Number.POSITIVE_INFINITY }
            pgDownSpans.push(span)
            note(`postgres ${action === 'crashPostgres' ? 'crash' : 'stop'} (${outageMs} ms)`)
            if (action === 'crashPostgres') await cluster.crash()
            else await cluster.stop()
            note('postgres down')
            await Bun.sleep(outageMs)
            await cluster.start()
            note('postgres up')
            span.to = performance.now()
            pgDown = false
          })
          break
        }
        case 'terminateBackends': {
          if (pgDown) break
          const n = (
            await db.q<{ n: number }>(
              `select count(*) filter (where pg_terminate_backend(pid))::int as n
                 from pg_stat_activity where application_name like 'outbox-mailer%'`,
            )
          )[0]!.n
          figures.terminated += n
          note(`terminated ${n} backends`)
          break
        }
        case 'latency':
          // Slow answers keep sends in flight for the kills and cuts to land on.
          chaosFaults.latencyMs = Math.floor(rng() * MAX_LATENCY_MS)
          graph.fake.setFaults(chaosFaults)
          note(`graph latency ${chaosFaults.latencyMs} ms`)
          break
        case 'revokeToken': {
          // Graph answers 401 to the token every worker holds; the refresh may meet Entra down.
          figures.revokes++
          const entra = rng()
          graph.fake.setFaults({
            ...chaosFaults,
            token:
              entra < 0.3
                ? ['hang']
                : entra < 0.6
                  ? [
                      {
                        status: 503,
                        error: 'temporarily_unavailable',
                        aadsts: 90033,
                        retryAfter: '1',
                      },
                    ]
                  : [],
          })
          graph.fake.revokeTokens(rng() < 0.5 ? 'expired' : 'invalid')
          note(`tokens revoked (entra ${entra < 0.3 ? 'hangs' : entra < 0.6 ? '503' : 'fine'})`)
          break
        }
        case 'cutGraph': {
          const n = graph.cut()
          figures.cuts += n
          note(`cut ${n} connections to graph`)
          break
        }
        case 'cancel': {
          // Recent rows: likely pending or in flight, where a cancel has something to decide.
          const ids = [...known].slice(-40)
          if (ids.length === 0) break
          const id = ids[Math.floor(rng() * ids.length)]!
          cancelAsked.add(id)
          note('cancel asked', [id])
          const res = await api
            .api(`/v1/outbox/${id}/cancel`, { method: 'POST', signal: AbortSignal.timeout(5_000) })
            .catch(() => null)
          note(`cancel answered ${res?.status ?? 'nothing'}`, [id])
          if (!res || res.status >= 500) figures.unanswered++
          if (res?.status === 200 || res?.status === 202) {
            cancelledAt.set(id, Date.now())
            figures.cancels++
          }
          break
        }
        case 'retry': {
          if (pgDown) break
          const candidates = await db.q<{ id: string }>(
            `select id::text from mailer.email_outbox where status in ('failed', 'cancelled')
              order by id limit 50`,
          )
          if (candidates.length === 0) break
          const id = candidates[Math.floor(rng() * candidates.length)]!.id
          note('retry asked', [id])
          const res = await api
            .api(`/v1/outbox/${id}/retry`, { method: 'POST', signal: AbortSignal.timeout(5_000) })
            .catch(() => null)
          note(`retry answered ${res?.status ?? 'nothing'}`, [id])
          if (!res || res.status >= 500) figures.unanswered++
          if (res?.status === 200) {
            retriedAt.set(id, [...(retriedAt.get(id) ?? []), Date.now()])
            figures.retries++
          }
          break
        }
      }
    } catch {
      // A fault of the harness's own making (the database down or restarting): the next one.
    }
  }

  // ---------------------------------------------------------------- calm: every row must settle
  await Promise.all([...background])
  note('calm: faults stop')
  graph.fake.setFaults({ latencyMs: 5 })
  for (let i = 0; i < WORKERS; i++) if (!workers[i]) await spawnWorker(i)
  const calmAt = performance.now()
  await within(
    'every row in a final state after the faults stopped',
    90_000,
    async () => {
      const [r] = await db.q<{ live: number }>(
        `select count(*) filter (where status in ('pending', 'sending'))::int as live from mailer.email_outbox`,
      )
      return r!.live === 0 ? true : undefined
    },
    { mailers: workers.filter((w): w is Mailer => w !== null), every: 200 },
  )
  const settleMs = performance.now() - calmAt
  for (const m of [...workers, api]) {
    if (!m) continue
    // A worker respawned as the faults stopped may still be starting (a quick settle, a loaded
    // machine): before its signal handlers exist, SIGTERM ends it like SIGKILL (143).
    const ready = await m.waitReady(30_000).then(
      () => true,
      (e) => {
        problems.push(`${m.name} not ready after the faults stopped: ${String(e)}`)
        return false
      },
    )
    if (!ready) continue
    note(`final SIGTERM ${m.name} (pid ${m.proc.pid})`)
    m.proc.kill('SIGTERM')
    const code = await m.exited
    if (code === 0) gracefulPids.set(m.proc.pid, { from: 0, to: 0 })
    else problems.push(`${m.name} exited ${code} after the final SIGTERM`)
  }

  // ---------------------------------------------------------------- the checks
  const rows = await db.q<{
    id: string
    status: string
    attempts: number
    max_attempts: number
    last_error_code: string | null
    last_error: string | null
    expires_at: Date | null
    sent_at: Date | null
    send_started_at: Date | null
    lease_owner: string | null
    lease_token: string | null
    lease_expires_at: Date | null
    rejected: boolean
  }>(
    `select id::text, status, attempts, coalesce(max_attempts, ${MAX_ATTEMPTS}) as max_attempts,
            last_error_code, last_error, expires_at, sent_at, send_started_at,
            lease_owner, lease_token::text, lease_expires_at,
            message -> 'to' @> jsonb_build_array(jsonb_build_object('address', $1::text)) as rejected
       from mailer.email_outbox order by id`,
    [REJECTED],
  )
  const history = await db.q<{
    outbox_id: string
    attempt: number
    worker_id: string | null
    outcome: string
    error_code: string | null
    error: string | null
    http_status: number | null
  }>(
    `select outbox_id::text, attempt, worker_id, outcome, error_code, error, http_status
       from mailer.email_attempts order by outbox_id, id`,
  )
  const historyOf = new Map<string, typeof history>()
  for (const h of history) historyOf.set(h.outbox_id, [...(historyOf.get(h.outbox_id) ?? []), h])
  const accepted = graph.acceptedCounts()
  const acceptedTimes = new Map<string, number[]>()
  for (const a of graph.fake.accepted) {
    if (a.outboxId)
      acceptedTimes.set(a.outboxId, [...(acceptedTimes.get(a.outboxId) ?? []), a.acceptedAt])
  }
  const byId = new Map(rows.map((r) => [r.id, r]))

  // Nothing lost: every id the harness was given exists; every accepted message is one of the rows.
  for (const id of known) if (!byId.has(id)) problems.push(`row ${id} was enqueued and is gone`)
  for (const id of accepted.keys()) if (!byId.has(id)) problems.push(`accepted ${id}: no such row`)

  // An attempt that may have delivered the message and whose outcome was never learned.
  const ambiguousEpisode = (h: (typeof history)[number]) =>
    ['timeout', 'network', 'aborted', 'ambiguous_send'].includes(h.error_code ?? '') ||
    h.http_status === 504 ||
    (h.outcome === 'lease_expired' && /during the send/.test(h.error ?? '')) ||
    // Such a send whose retry would come after expiresAt: the row fails as expired, saying so.
    /may have delivered/.test(h.error ?? '')
  const FINAL = new Set(['sent', 'failed', 'expired', 'cancelled'])

  let duplicates = 0
  /** The latest acceptance after an expiresAt or an answered cancel (how close SLACK_MS came). */
  const lateMs = { expiry: Number.NEGATIVE_INFINITY, cancel: Number.NEGATIVE_INFINITY }
  for (const r of rows) {
    const hist = historyOf.get(r.id) ?? []
    const n = accepted.get(r.id) ?? 0
    const retries = retriedAt.get(r.id)?.length ?? 0
    const ambiguous = hist.filter(ambiguousEpisode).length
    const say = (what: string) => {
      offending.add(r.id)
      problems.push(
        `row ${r.id} (${r.status}, ${r.last_error_code ?? '-'}, attempts ${r.attempts}/${r.max_attempts}, accepted ${n}x, retried ${retries}x): ${what}\n    history: ${hist.map((h) => `${h.attempt}:${h.outcome}${h.error_code ? `/${h.error_code}` : ''}${h.http_status ? `/${h.http_status}` : ''}`).join(' ')}`,
      )
    }
    if (!['sent', 'failed', 'cancelled'].includes(r.status)) say('not in a final state')
    if (r.lease_owner || r.lease_token || r.lease_expires_at) say('lease left on a finished row')
    if (r.attempts > r.max_attempts) say('more attempts than allowed')
    if (hist.some((h) => h.attempt > r.max_attempts)) say('an attempt numbered past max_attempts')

    // Duplicates: only where the promise allows them.
    if (n > 1) {
      duplicates += n - 1
      if (MODE === 'lookup') say('sent twice although the mailbox lookup was on')
      else if (MODE === 'hold') {
        const held = hist.filter((h) => h.error_code === 'ambiguous_send').length
        if (n - 1 > Math.min(held, retries)) say('sent again without a retry of a held row')
      } else if (n - 1 > ambiguous) say('sent more often than its interrupted sends explain')
    }
    // Every acceptance is a sent row, or one whose send was interrupted.
    if (n > 0 && r.status !== 'sent' && ambiguous === 0) say('accepted by Graph, not marked sent')
    if (r.status === 'sent' && n === 0) say('marked sent and never accepted by Graph')
    if (r.rejected && (n > 0 || r.status === 'sent')) say('a rejected recipient was sent')
    // With the lookup on, a failed row that may have been delivered keeps the mark, so a retry looks first.
    if (MODE === 'lookup' && n > 0 && r.status === 'failed' && r.send_started_at === null) {
      if (!/may have delivered/.test(r.last_error ?? ''))
        say('failed without the mark of its delivered send')
    }

    // The history agrees with the row.
    const sentEntries = hist.filter((h) => h.outcome === 'sent').length
    if (r.status === 'sent' && (sentEntries !== 1 || hist.at(-1)?.outcome !== 'sent'))
      say('sent, but its history does not end with its one sent attempt')
    if (r.status !== 'sent' && sentEntries > 0) say(`${r.status}, yet its history says sent`)
    const last = hist.at(-1)
    if (
      r.status === 'failed' &&
      !['failed', 'expired', 'lease_expired'].includes(last?.outcome ?? '')
    )
      say('failed, but its history does not end with a failure')
    if (r.status === 'cancelled' && last?.outcome !== 'cancelled')
      say('cancelled, but its history does not end with the cancel')
    // A throttled row that fails (its expiresAt reached) gives its attempt back, as a throttle does.
    const throttledUntilExpiry = (error: string | null) =>
      /^still throttled at its expiresAt/.test(error ?? '')
    const refunded = (h: (typeof hist)[number]) =>
      ['throttled', 'released'].includes(h.outcome) ||
      h.error_code === 'throttled' ||
      (h.error_code === 'expired' && throttledUntilExpiry(h.error))
    if (r.status !== 'pending' && last && !refunded(last) && last.attempt !== r.attempts)
      say('the last history entry names another attempt than the row')
    // Each counted claim leaves one entry, numbered 1, 2, …; throttles and releases give theirs
    // back, and a cancel through the API (no worker) counts none. (A retry restarts the count.)
    if (retries === 0) {
      const counted = hist.filter((h) => h.worker_id !== null && !refunded(h)).map((h) => h.attempt)
      if (counted.join(',') !== Array.from({ length: r.attempts }, (_, i) => i + 1).join(','))
        say(`counted attempts ${counted.join(',') || 'none'} do not number 1..${r.attempts}`)
    }
    const finals = hist.filter((h) => FINAL.has(h.outcome)).length
    if (finals > 1 + retries) say('attempts recorded after a final state')

    // Final states the harness can explain.
    if (r.status === 'cancelled' && !cancelAsked.has(r.id)) say('cancelled, and nobody asked')
    if (r.status === 'failed') {
      const code = r.last_error_code ?? ''
      const ok =
        (code === 'expired' && r.expires_at !== null && r.expires_at.getTime() <= Date.now()) ||
        // Throttled until its expiresAt: failed (code expired) when its next turn fell after it.
        (code === 'expired' && r.expires_at !== null && throttledUntilExpiry(r.last_error)) ||
        (code === 'ErrorInvalidRecipients' && r.rejected) ||
        (code === 'ambiguous_send' && MODE === 'hold') ||
        (code === 'lease_expired' && r.attempts >= r.max_attempts) ||
        (r.attempts >= r.max_attempts && /^attempts exhausted/.test(r.last_error ?? ''))
      if (!ok) say('failed for a reason its attempts do not explain')
    }
    // Never sent after its expiry, nor after a cancel that answered yes (unless retried after it).
    const times = acceptedTimes.get(r.id) ?? []
    const expires = r.expires_at?.getTime() ?? expiresAtOf.get(r.id)
    for (const t of times)
      if (expires !== undefined) lateMs.expiry = Math.max(lateMs.expiry, t - expires)
    if (expires !== undefined && times.some((t) => t > expires + SLACK_MS))
      say('accepted after its expiresAt')
    const cancelled = cancelledAt.get(r.id)
    if (cancelled !== undefined) {
      const retriedAfter = (retriedAt.get(r.id) ?? []).some((t) => t > cancelled)
      if (!retriedAfter)
        for (const t of times) lateMs.cancel = Math.max(lateMs.cancel, t - cancelled)
      if (!retriedAfter && times.some((t) => t > cancelled + SLACK_MS))
        say('accepted after its cancel was answered')
    }
  }

  // No slot left held by a process that stopped cleanly (a killed one's expires with its TTL).
  const slots = await db.q<{ slot: number; holder: string; ahead_ms: number }>(
    `select slot, holder, extract(epoch from expires_at - now()) * 1000 as ahead_ms
       from mailer.send_slots where expires_at > now()`,
  )
  const slotTtlMs = (Number(FAST.GRAPH_REQUEST_TIMEOUT_SECONDS) + 15) * 1000
  for (const s of slots) {
    const pid = Number(s.holder.split(':')[1])
    // A stop while Postgres was down cannot give its slots back: they expire by themselves.
    const stop = gracefulPids.get(pid)
    const duringOutage =
      stop !== undefined &&
      pgDownSpans.some((d) => d.from <= stop.to + 1_000 && stop.from <= d.to + 1_000)
    if (stop && !duringOutage) {
      const m = all.find((x) => x.proc.pid === pid)
      problems.push(
        `slot ${s.slot} still held ${Math.round(s.ahead_ms)} ms ahead by ${m?.name ?? '?'} (${s.holder}), which stopped cleanly\n${m?.logTail(12) ?? ''}`,
      )
    }
    if (s.ahead_ms > slotTtlMs + 1_000) problems.push(`slot ${s.slot} held ${s.ahead_ms} ms ahead`)
  }

  const counts: Record<string, number> = {}
  for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1
  report(`10 chaos soak (${MODE})`, {
    seed: SEED,
    rows: rows.length,
    ...counts,
    accepted: graph.fake.accepted.length,
    duplicates,
    ambiguousRows: rows.filter((r) => (historyOf.get(r.id) ?? []).some(ambiguousEpisode)).length,
    lateAfterExpiry: Number.isFinite(lateMs.expiry) ? seconds(lateMs.expiry) : '-',
    lateAfterCancel: Number.isFinite(lateMs.cancel) ? seconds(lateMs.cancel) : '-',
    // The Graph fake's own delay: a sendMail's arrival to its acceptance (at most latencyMs, idle).
    fakeLag: seconds(
      Math.max(
        0,
        ...graph.fake.requests.map((q) => {
          const a = graph.fake.accepted.find((x) => x.requestId === q.acceptedRequestId)
          return a ? a.acceptedAt - q.at : 0
        }),
      ),
    ),
    ...figures,
    settle: seconds(settleMs),
  })
  if (problems.length > 0) {
    console.log(`[fault] 10 chaos soak seed=${SEED} mode=${MODE}: ${problems.length} problems`)
    for (const p of problems) console.log(`  ${p}`)
  }
  if (problems.length > 0 || process.env.CHAOS_EVIDENCE === 'always')
    await leaveEvidence({ db, graph: graph.fake, mailers: all, timeline, ids: [...offending] })
  expect(problems).toEqual([])
  expect(rows.length).toBeGreaterThan(0)
}, 180_000)

/** One random message and its options: senders, a rejected recipient, few attempts, an expiry, priorities. */
function rowSpec(r: () => number) {
  const x = r()
  const to = x < 0.05 ? REJECTED : `r${Math.floor(r() * 1e6)}@example.com`
  const options: { maxAttempts?: number; expiresAt?: string; priority?: number } = {}
  if (r() < 0.12) options.maxAttempts = 1 + Math.floor(r() * 2)
  if (r() < 0.1) options.expiresAt = new Date(Date.now() + 3_000 + r() * 12_000).toISOString()
  if (r() < 0.3) options.priority = Math.floor(r() * 3) - 1
  return {
    message: {
      from: SENDERS[Math.floor(r() * SENDERS.length)]!,
      to,
      subject: 'chaos',
      text: 'chaos soak',
    },
    options,
  }
}

/**
 * A failing run explains itself: for each offending row, its outbox row, its full attempt history,
 * what the Graph fake received and accepted for it, what the harness did to it and every log line
 * naming it; and keeps the workers' logs, the tables and the timeline in EVIDENCE_DIR.
 */
async function leaveEvidence(e: {
  db: Database
  graph: FakeGraph
  mailers: readonly Mailer[]
  timeline: readonly { at: number; what: string; ids?: string[] }[]
  ids: readonly string[]
}) {
  const iso = (t: number | null) => (t === null ? '-' : new Date(t).toISOString())
  mkdirSync(EVIDENCE_DIR, { recursive: true })
  const logs = e.mailers.map((m) => {
    let text = ''
    try {
      text = readFileSync(m.logPath, 'utf8')
      copyFileSync(m.logPath, join(EVIDENCE_DIR, `${m.name}.log`))
    } catch {}
    return { name: m.name, pid: m.proc.pid, lines: text.split('\n') }
  })
  const outbox = await e.db
    .q(
      `select id::text, status, attempts, max_attempts, priority, send_at, expires_at, created_at,
              sent_at, send_started_at, cancel_requested_at, lease_owner, lease_token::text,
              lease_expires_at, last_error_code, last_error
         from mailer.email_outbox order by id`,
    )
    .catch((err) => [{ error: String(err) }])
  const attempts = await e.db
    .q('select * from mailer.email_attempts order by outbox_id, id')
    .catch((err) => [{ error: String(err) }])
  const slots = await e.db
    .q(
      'select slot, holder, token, expires_at::text, now()::text as read_at from mailer.send_slots order by slot',
    )
    .catch((err) => [{ error: String(err) }])
  const json = (v: unknown) => JSON.stringify(v, null, 1)
  writeFileSync(join(EVIDENCE_DIR, 'send_slots.json'), json(slots))
  writeFileSync(join(EVIDENCE_DIR, 'email_outbox.json'), json(outbox))
  writeFileSync(join(EVIDENCE_DIR, 'email_attempts.json'), json(attempts))
  writeFileSync(
    join(EVIDENCE_DIR, 'graph-accepted.json'),
    json(e.graph.accepted.map(({ body: _body, ...a }) => a)),
  )
  writeFileSync(join(EVIDENCE_DIR, 'graph-requests.json'), json(e.graph.requests))
  writeFileSync(
    join(EVIDENCE_DIR, 'timeline.txt'),
    e.timeline.map((t) => `${iso(t.at)} ${t.what}${t.ids ? ` ${t.ids.join(',')}` : ''}`).join('\n'),
  )
  for (const id of e.ids) {
    const out: string[] = [`---- evidence for row ${id}`]
    const row = (outbox as { id?: string }[]).find((r) => r.id === id)
    out.push(`  row: ${JSON.stringify(row)}`)
    for (const a of attempts as { outbox_id?: unknown }[])
      if (String(a.outbox_id) === id) out.push(`  attempt: ${JSON.stringify(a)}`)
    for (const r of e.graph.requests)
      if (r.outboxId === id)
        out.push(
          `  graph ${r.kind} at ${iso(r.at)} answered ${iso(r.answeredAt)} ${r.status ?? '-'} fault=${r.fault ?? '-'}${r.found !== undefined ? ` found=${r.found}` : ''}${r.acceptedRequestId ? ` accepted request-id ${r.acceptedRequestId}` : ''}`,
        )
    for (const a of e.graph.accepted)
      if (a.outboxId === id)
        out.push(`  graph accepted at ${iso(a.acceptedAt)} request-id ${a.requestId} (${a.folder})`)
    for (const t of e.timeline)
      if (t.ids?.includes(id) && t.ids.length <= 30) out.push(`  harness ${iso(t.at)} ${t.what}`)
      else if (t.ids?.includes(id))
        out.push(`  harness ${iso(t.at)} ${t.what} (one of ${t.ids.length})`)
    const quoted = `"${id}"`
    for (const l of logs)
      for (const line of l.lines) if (line.includes(quoted)) out.push(`  log ${l.name}: ${line}`)
    console.log(out.join('\n'))
  }
  console.log(
    `[fault] 10 chaos soak: evidence (logs, tables, send slots, graph requests, timeline) kept in ${EVIDENCE_DIR}`,
  )
}
