// Each configured database's pool as `serve` opens it for its role: sized for the workers, on the LISTEN session when it may be.
import type { Config } from './config.ts'
import { pickupPathOf } from './database-engines.ts'
import { type DbHandle, openDb } from './db/open.ts'
import type { Logger } from './log.ts'
import { pickupPrimer } from './outbox/pickup-primes.ts'
import type { Role } from './serve-options.ts'

/** Opens every configured database's pool; a failed start closes each (serve.ts). */
export function openServedDatabases(config: Config, role: Role, log: Logger): DbHandle[] {
  return config.databases.map((d) =>
    openDb({
      name: d.name,
      url: d.url,
      log,
      maxConnections: config.worker.concurrency + 4,
      // The worker's statements ride its LISTEN session when it is free: idle, one connection.
      shareListenSession:
        role !== 'api' && config.worker.listenMode === 'auto' && d.listenUrl === d.url,
      // Else they ride the pool's kept connection. Either way a pickup on a pool connection (beside
      // the session: each one; else the kept one) finds its statements primed.
      ...(role !== 'api' && { prime: pickupPrimer(pickupPathOf(config)) }),
    }),
  )
}
