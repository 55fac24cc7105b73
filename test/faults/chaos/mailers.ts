// The chaos soak's processes: the workers it stops and starts again by slot, and one API process.
import { type Mailer, seconds, spawnMailer } from '../harness.ts'
import type { ChaosRecord } from './record.ts'
import { GRACE_SECONDS, OLDER_BINARY, pollsOnSlot, runsOlderBinary, WORKERS } from './settings.ts'
import { stopVerdict } from './stop-verdict.ts'
import { type Release, releaseEnv, releaseFor } from './worker-configs.ts'

export interface ChaosMailers {
  /** By slot; null while the slot's worker is stopped. */
  workers: (Mailer | null)[]
  api: Mailer
  /** Every process started, stopped ones too. */
  all: Mailer[]
  spawnWorker(slot: number): Promise<Mailer>
  /** The release each worker started as (worker-configs.ts), by pid. */
  releaseOf: Map<number, Release>
  /** From now on every worker starts as the next release (the pause mix's calm). */
  completeDeploy(): void
}

/**
 * Starts the workers and the API process and waits until each is ready. `slotEnv`: what a worker
 * slot's processes have besides `env` (the slow-database shape's DATABASE_URL, its own proxy; the
 * worker role's login); a slot that polls (CHAOS_LISTEN_MODE) has LISTEN_MODE=poll too.
 */
export async function startMailers(
  env: Record<string, string>,
  record: ChaosRecord,
  slotEnv: (slot: number) => Record<string, string> = () => ({}),
): Promise<ChaosMailers> {
  const all: Mailer[] = []
  const workers: (Mailer | null)[] = []
  let spawned = 0
  let deployed = false
  const startsOf = new Map<number, number>()
  const releaseOf = new Map<number, Release>()
  const spawnWorker = async (slot: number) => {
    const older = runsOlderBinary(slot)
    const starts = startsOf.get(slot) ?? 0
    startsOf.set(slot, starts + 1)
    const release = releaseFor(slot, starts, deployed)
    const polls = pollsOnSlot(slot)
    const tag = `${older ? '-older' : ''}${release === 'next' ? '-next' : ''}${polls ? '-poll' : ''}`
    const m = await spawnMailer(
      `chaos-w${slot}${tag}-${spawned++}`,
      releaseEnv({ ...env, ...slotEnv(slot), ...(polls && { LISTEN_MODE: 'poll' }) }, release),
      {
        role: 'worker',
        ...(older && { binary: OLDER_BINARY }),
      },
    )
    releaseOf.set(m.proc.pid, release)
    record.note(`spawned ${m.name} (pid ${m.proc.pid})`)
    all.push(m)
    workers[slot] = m
    return m
  }
  for (let i = 0; i < WORKERS; i++) await spawnWorker(i)
  const api = await spawnMailer('chaos-api', env, { role: 'api' })
  all.push(api)
  await Promise.all(all.map((m) => m.waitReady()))
  const completeDeploy = () => {
    deployed = true
  }
  return { workers, api, all, spawnWorker, releaseOf, completeDeploy }
}

/**
 * Stops the slot's worker with `asked`, checks a SIGTERM's clean exit, and starts a new one `downMs`
 * later. `slowedBetween`: whether the slot's database was slow (a second or more) at some moment
 * of a span (the slow-database shape); a stop it held past the grace and the stop's margin exits 0
 * with `stop cut short` (every accepted send recorded, what it held left to expire), or 1 with `stop
 * unfinished` or, ended in time, `stopped with accepted sends unrecorded` (a recording given up, a
 * lease found lost during the stop), as documented (src/serve-stop.ts): as after a kill, not a problem.
 */
export async function stopWorker(
  mailers: ChaosMailers,
  record: ChaosRecord,
  slot: number,
  asked: 'SIGKILL' | 'SIGTERM',
  downMs: number,
  slowedBetween: (from: number, to: number) => boolean = () => false,
): Promise<void> {
  const { problems, note } = record
  let signal = asked
  const m = mailers.workers[slot]!
  mailers.workers[slot] = null
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
    } else if (
      (((code === 1 &&
        (m.logTail(3).includes('"msg":"stop unfinished: exiting"') ||
          m.logTail(3).includes('"msg":"stopped with accepted sends unrecorded'))) ||
        (code === 0 && m.logTail(3).includes('"msg":"stop cut short: exiting"'))) &&
        slowedBetween(t0, performance.now())) ||
      // Leases the chaos took meanwhile: a send whose lease was found lost during the stop.
      stopVerdict(code, (n) => m.logTail(n)) === 'unrecorded'
    ) {
      record.figures.stopsUnfinished++
      note(`${m.name}: stop unfinished or sends unrecorded (its leases expire, are reclaimed)`)
    } else if (code !== 0) {
      problems.push(
        `${m.name} exited ${code} after SIGTERM (${seconds(performance.now() - t0)})\n${m.logTail(10)}`,
      )
    } else record.gracefulPids.set(m.proc.pid, { from: t0, to: performance.now() })
  }
  note(`${m.name} exited ${code}`)
  await Bun.sleep(downMs)
  await mailers.spawnWorker(slot)
}
