// What a file's tests start and leave running, ended after each test: engines stopped together, then the rest closed one at a time in the order pushed.
import { afterEach } from 'bun:test'
import type { TestEngine } from './engine.ts'

export interface EndedAfterEach {
  engines: TestEngine[]
  /** A proxy's handle before the proxy: closed in this order, each awaited. */
  closing: (() => Promise<void>)[]
}

/** Called once at a file's top level; its tests push onto the lists. */
export function endedAfterEach(): EndedAfterEach {
  const ended: EndedAfterEach = { engines: [], closing: [] }
  afterEach(async () => {
    await Promise.all(ended.engines.splice(0).map((e) => e.stop()))
    for (const close of ended.closing.splice(0)) await close()
  })
  return ended
}
