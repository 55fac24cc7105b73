// The slow-database shape's proxies: one per worker slot between its workers and Postgres, slowed in bursts.
import { type Delays, startDelayingProxy } from '../../support/delaying-proxy.ts'
import type { Background } from './background.ts'
import type { SlowDatabase } from './schedule.ts'

export interface SlowDatabaseProxies {
  /** The DATABASE_URL slot `slot`'s workers reach Postgres by. */
  urlOf(slot: number): string
  /** In the background: the slot's proxy (every one's with `everySlot`) delays for the burst's time. */
  burst(slot: number, b: SlowDatabase, background: Background, note: (what: string) => void): void
  /**
   * Whether the slot's answers or statements were a second or more late at some moment from `from`
   * to `to` (performance.now()): long enough that a stop's few round trips, a reconnect's several,
   * could not fit in SHUTDOWN_GRACE_SECONDS and the stop's margin.
   */
  slowedBetween(slot: number, from: number, to: number): boolean
  /** Every proxy forwards at once again (the calm). */
  calm(): void
  close(): void
}

interface SlowSpan {
  from: number
  /** Infinity while the delay is in force. */
  to: number
  lateMs: number
}

export async function startSlowDatabaseProxies(
  target: string,
  slots: number,
): Promise<SlowDatabaseProxies> {
  const proxies = await Promise.all(Array.from({ length: slots }, () => startDelayingProxy(target)))
  // Bursts overlap: a burst's end restores a slot only if no later burst began on it.
  const latest = proxies.map(() => 0)
  let bursts = 0
  const fast = { answerMs: 0, requestMs: 0 }
  // Each slot's delays as set, from when; a delay's bytes arrive up to that long after it ends.
  const spans = proxies.map(() => [] as SlowSpan[])
  const set = (i: number, d: Delays) => {
    const now = performance.now()
    const open = spans[i]!.at(-1)
    if (open && open.to === Number.POSITIVE_INFINITY) open.to = now + open.lateMs
    spans[i]!.push({
      from: now,
      to: Number.POSITIVE_INFINITY,
      lateMs: Math.max(d.answerMs, d.requestMs),
    })
    proxies[i]!.delay(d)
  }
  return {
    urlOf: (slot) => proxies[slot]!.url,
    burst(slot, b, background, note) {
      const id = ++bursts
      const hit = b.everySlot ? proxies.map((_, i) => i) : [slot]
      for (const i of hit) {
        latest[i] = id
        set(i, b)
      }
      note(
        `slow database ${b.everySlot ? 'every slot' : `slot ${slot}`}: answers ${b.answerMs} ms, statements ${b.requestMs} ms late for ${b.forMs} ms`,
      )
      // Pacing of the fault itself (its length), not a wait for an effect.
      background.run(async () => {
        await Bun.sleep(b.forMs)
        for (const i of hit) if (latest[i] === id) set(i, fast)
      })
    },
    slowedBetween: (slot, from, to) =>
      spans[slot]!.some((s) => s.lateMs >= 1_000 && s.from <= to && s.to >= from),
    calm() {
      for (let i = 0; i < proxies.length; i++) set(i, fast)
    },
    close() {
      for (const p of proxies) p.close()
    },
  }
}
