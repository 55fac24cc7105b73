// The chaos soak's schedule is replayable: a seed makes the same turns, pinned here for seeds 7, 301 and 381.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { prng } from '../faults/chaos/random.ts'
import {
  ACTIONS,
  type ChaosAction,
  ChaosSchedule,
  HARSH_ACTIONS,
  PAUSE_ACTIONS,
  type RowSpec,
  SLOW_DB_ACTIONS,
} from '../faults/chaos/schedule.ts'
import { type ChaosActions, type ChaosWorld, chaosTurn } from '../faults/chaos/turn.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// Only what the seed decides (an expiry's moment follows the clock); the draw after the last turn
// pins every row's draws too.
const row = ({ message, options }: RowSpec) =>
  `${message.from?.[0] ?? '-'}>${message.to.split('@')[0]}` +
  `${options.maxAttempts ? ` max${options.maxAttempts}` : ''}` +
  `${options.expiresAt ? ' exp' : ''}` +
  `${options.priority !== undefined ? ` p${options.priority}` : ''}`
const rows = (batch: RowSpec[]) =>
  `${batch.length} rows, ${batch.filter((r) => r.message.to.startsWith('nobody')).length} rejected, ${batch.filter((r) => r.options.expiresAt).length} expiring`

/** The first `n` turns of `seed` in a world where Postgres stays up and every worker can be stopped. */
async function turns(
  seed: number,
  n: number,
  weights: Record<ChaosAction, number> = ACTIONS,
  pauses = false,
): Promise<string[]> {
  const out: string[] = []
  let paused = 0
  const say = (what: string) => void out.push(`${paused}ms ${what}`)
  const ids = Array.from({ length: 60 }, (_, i) => String(i + 1))
  const world: ChaosWorld = {
    pgDown: () => false,
    canStop: () => true,
    recentIds: () => ids.slice(-40),
    retryCandidates: async () => ids.slice(0, 50),
    probeRows: async () => ids.slice(0, 3),
  }
  const act: ChaosActions = {
    enqueueSql: async (batch) => say(`sql ${rows(batch)}`),
    enqueueApi: async (r) => say(`api ${row(r)}${r.options.sendAt ? ' later' : ''}`),
    stopWorker: (slot, signal, downMs) => say(`${signal} w${slot} ${downMs}ms`),
    stopPostgres: (how, outageMs) => say(`postgres ${how} ${outageMs}ms`),
    enqueueThenCrash: async (batch, delayMs, outageMs) =>
      say(`sql ${rows(batch)}, crash ${delayMs}ms after, ${outageMs}ms`),
    killListeners: async () => say('kill listeners'),
    terminateBackends: async () => say('terminate'),
    cutGraph: () => say('cut'),
    setLatency: (ms) => say(`latency ${ms}ms`),
    revokeTokens: (r) => say(`revoke ${r.reason} entra ${r.entra}`),
    cancel: async (id) => say(`cancel ${id}`),
    retry: async (id) => say(`retry ${id}`),
    throttleMailbox: (t) => say(`throttle ${t.mailbox} ${t.forMs}ms retry-after ${t.retryAfterS}`),
    probeRowCommand: async (id, how) => say(`probe row ${id} ${how}`),
    slowDatabase: (slot, b) =>
      say(
        `slow db ${b.everySlot ? 'every slot' : `w${slot}`} answers ${b.answerMs}ms requests ${b.requestMs}ms for ${b.forMs}ms`,
      ),
  }
  const schedule = new ChaosSchedule(prng(seed), weights, pauses)
  for (let i = 0; i < n; i++)
    await chaosTurn(schedule, world, act, async (ms) => {
      paused = ms
    })
  out.push(`then ${schedule.pauseMs()}ms`)
  return out
}

test('seed 7: the first 16 turns', async () => {
  expect(await turns(7, 16)).toEqual([
    '107ms sql 14 rows, 0 rejected, 0 expiring',
    '600ms cut',
    '456ms cancel 60',
    '489ms cancel 26',
    '696ms postgres stop 821ms',
    '226ms cancel 47',
    '694ms terminate',
    '393ms sql 22 rows, 0 rejected, 4 expiring',
    '426ms sql 18 rows, 2 rejected, 5 expiring',
    '480ms sql 17 rows, 1 rejected, 0 expiring',
    '642ms api c>r43856 max1',
    '578ms cancel 58',
    '646ms postgres crash 2347ms',
    '645ms cancel 32',
    '398ms latency 304ms',
    '549ms cut',
    'then 592ms',
  ])
})

test('seed 301: the first 16 turns', async () => {
  expect(await turns(301, 16)).toEqual([
    '396ms api b>r838785 max2 p0',
    '167ms sql 11 rows, 0 rejected, 1 expiring',
    '279ms sql 4 rows, 0 rejected, 0 expiring',
    '623ms cut',
    '306ms cancel 24',
    '568ms latency 182ms',
    '204ms SIGKILL w1 718ms',
    '581ms sql 21 rows, 1 rejected, 2 expiring',
    '266ms terminate',
    '162ms cancel 41',
    '108ms api b>r540277',
    '657ms latency 283ms',
    '240ms postgres stop 1507ms',
    '221ms cut',
    '674ms api b>r447551',
    '293ms latency 213ms',
    'then 637ms',
  ])
})

test('seed 381: the first 16 turns', async () => {
  expect(await turns(381, 16)).toEqual([
    '393ms SIGKILL w2 506ms',
    '687ms SIGKILL w0 286ms',
    '691ms sql 5 rows, 2 rejected, 1 expiring',
    '596ms api a>r753560 p0',
    '368ms SIGTERM w2 1074ms',
    '328ms terminate',
    '669ms retry 38',
    '322ms api c>r36863',
    '389ms SIGKILL w1 1599ms',
    '627ms SIGKILL w0 1523ms',
    '386ms cut',
    '525ms SIGKILL w0 269ms',
    '636ms cancel 26',
    '669ms postgres crash 1301ms',
    '658ms sql 5 rows, 0 rejected, 2 expiring',
    '310ms cancel 38',
    'then 121ms',
  ])
})

test('the harsh mix crashes Postgres just after enqueues and kills listeners; the default never does', async () => {
  const harsh = await turns(7, 200, HARSH_ACTIONS)
  const plain = await turns(7, 200)
  const count = (t: string[], re: RegExp) => t.filter((x) => re.test(x)).length
  expect(count(harsh, /crash \d+ms after/)).toBeGreaterThan(3)
  expect(count(harsh, /kill listeners/)).toBeGreaterThan(3)
  expect(count(plain, /crash \d+ms after|kill listeners/)).toBe(0)
})

test('the pause mix throttles mailboxes alone, commands probe rows and enqueues rows from MAIL_FROM; the default never does', async () => {
  const pauses = await turns(7, 200, PAUSE_ACTIONS, true)
  const plain = await turns(7, 200)
  const count = (t: string[], re: RegExp) => t.filter((x) => re.test(x)).length
  expect(count(pauses, /throttle \S+ \d+ms retry-after (\d|1[0-2])$/)).toBeGreaterThan(3)
  expect(count(pauses, /probe row \d+ (cancel|cancelThenRetry)$/)).toBeGreaterThan(3)
  expect(count(pauses, /api ->/)).toBeGreaterThan(0)
  expect(count(plain, /throttle|probe row|api ->/)).toBe(0)
})

test('the slow-database shape slows answers past the lease margin and within it, one slot or all; the default never does', async () => {
  const slow = await turns(7, 200, SLOW_DB_ACTIONS)
  const plain = await turns(7, 200)
  const answers = slow.flatMap((x) => {
    const m = /slow db (every slot|w[0-2]) answers (\d+)ms requests (\d+)ms for (\d+)ms$/.exec(x)
    return m ? [{ every: m[1] === 'every slot', ms: Number(m[2]), requestMs: Number(m[3]) }] : []
  })
  // Within HEARTBEAT_ANSWER_MS, past it within the 3 s margin (a send waits), and past the margin.
  expect(answers.filter((a) => a.ms < 1_000).length).toBeGreaterThan(1)
  expect(answers.filter((a) => a.ms >= 1_000 && a.ms < 3_000).length).toBeGreaterThan(1)
  expect(answers.filter((a) => a.ms >= 3_000).length).toBeGreaterThan(1)
  expect(answers.filter((a) => a.every).length).toBeGreaterThan(0)
  expect(answers.filter((a) => !a.every).length).toBeGreaterThan(0)
  expect(answers.filter((a) => a.requestMs > 0).length).toBeGreaterThan(0)
  expect(plain.filter((x) => x.includes('slow db'))).toEqual([])
})
