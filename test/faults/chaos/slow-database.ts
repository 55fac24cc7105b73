// The slow-database shape's proxies: one per worker slot between its workers and Postgres, slowed in bursts.
import { startDelayingProxy } from '../../support/delaying-proxy.ts'
import type { Background } from './background.ts'
import type { SlowDatabase } from './schedule.ts'

export interface SlowDatabaseProxies {
  /** The DATABASE_URL slot `slot`'s workers reach Postgres by. */
  urlOf(slot: number): string
  /** In the background: the slot's proxy (every one's with `everySlot`) delays for the burst's time. */
  burst(slot: number, b: SlowDatabase, background: Background, note: (what: string) => void): void
  /** Every proxy forwards at once again (the calm). */
  calm(): void
  close(): void
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
  return {
    urlOf: (slot) => proxies[slot]!.url,
    burst(slot, b, background, note) {
      const id = ++bursts
      const hit = b.everySlot ? proxies.map((_, i) => i) : [slot]
      for (const i of hit) {
        latest[i] = id
        proxies[i]!.delay(b)
      }
      note(
        `slow database ${b.everySlot ? 'every slot' : `slot ${slot}`}: answers ${b.answerMs} ms, statements ${b.requestMs} ms late for ${b.forMs} ms`,
      )
      // Pacing of the fault itself (its length), not a wait for an effect.
      background.run(async () => {
        await Bun.sleep(b.forMs)
        for (const i of hit) if (latest[i] === id) proxies[i]!.delay(fast)
      })
    },
    calm() {
      for (const p of proxies) p.delay(fast)
    },
    close() {
      for (const p of proxies) p.close()
    },
  }
}
