// A worker's route to the database that goes away as Graph takes its first sendMail: the send is accepted (202) and never recorded.
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import type { TestDb } from './db.ts'
import type { FakeGraph, FakeGraphFaults } from './fake-graph.ts'
import { type OutageProxy, startOutageProxy } from './outage-proxy.ts'

export interface CutRoute {
  /** For the worker whose send is cut off; `t`'s own pool is not behind the proxy. */
  handle: DbHandle
  proxy: OutageProxy
  /** The handle, then the proxy. */
  close(): Promise<void>
}

/**
 * Sets the fake's faults to `faults` plus the cut: the proxy goes down (its connections cut, new
 * ones refused) in the first sendMail, which the fake then accepts. The caller closes the route.
 */
export async function cutAtFirstSend(
  t: TestDb,
  fake: FakeGraph,
  faults: Omit<FakeGraphFaults, 'pickSendMail'> = {},
): Promise<CutRoute> {
  const proxy = await startOutageProxy(t.url)
  fake.setFaults({
    ...faults,
    pickSendMail: () => {
      if (fake.sendMailRequests() === 1) void proxy.down()
      return undefined
    },
  })
  const handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 4 })
  return {
    handle,
    proxy,
    close: async () => {
      await handle.close()
      await proxy.close()
    },
  }
}
