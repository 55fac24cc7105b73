// A worker's statements through an answer-holding proxy, and its stop while one answer is held: whether the stop resolved with that statement unanswered.
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { type AnswerHoldingProxy, startAnswerHoldingProxy } from './answer-holding-proxy.ts'
import type { TestDb } from './db.ts'
import { pollUntil } from './events.ts'

export interface AnswerHoldingHandle {
  proxy: AnswerHoldingProxy
  /** A handle whose statements go through the proxy: the worker's `db`. */
  handle: DbHandle
  /** Releases what is held, closes the handle and the proxy. */
  close(): Promise<void>
}

export async function openAnswerHoldingHandle(t: TestDb): Promise<AnswerHoldingHandle> {
  const proxy = await startAnswerHoldingProxy(t.url)
  const handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 20 })
  return {
    proxy,
    handle,
    async close() {
      proxy.release()
      await handle.close()
      proxy.close()
    },
  }
}

/**
 * Runs `stop` while the proxy holds (or is to hold) a statement's answer: `meanwhile` runs once it
 * began; the answer is released once `woundDown` says the stop has done all else (or the stop is
 * over). Returns whether the answer was still held when the stop resolved: true, the stop left that
 * statement running.
 */
export async function heldWhenStopped(
  proxy: AnswerHoldingProxy,
  stop: () => Promise<void>,
  p: { meanwhile?: () => Promise<void>; woundDown: () => Promise<boolean> },
): Promise<boolean | null> {
  const at = { stop: null as boolean | null }
  const stopped = stop().then(() => {
    at.stop = proxy.holding()
  })
  await p.meanwhile?.()
  await pollUntil(
    async () => (at.stop !== null || (await p.woundDown()) ? true : undefined),
    30_000,
  )
  proxy.release()
  await stopped
  return at.stop
}
