// A pg pool a test opens on its own: a drop or a terminate that ends its idle connections never crashes the run, and its end() waits until the server has its goodbye.
import pg from 'pg'

/**
 * As the product's pool (src/db/open.ts), its connections' errors are listened to: a connection
 * ended under it while idle (57P01: `drop database … with (force)`, pg_terminate_backend) would
 * otherwise be thrown out of the socket's handler, an unhandled error that fails the run, and a
 * statement running on one fails by itself. pg-pool's end() resolves once it has sent each
 * connection's goodbye, before the server has read it: a drop right after (useTestDb's, in the
 * file's afterAll) met one half-way (round 51's CI). This end() resolves once the server closed each.
 */
export function testPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config)
  pool.on('error', () => {})
  const open = new Set<Promise<void>>()
  pool.on('connect', (client) => {
    client.on('error', () => {})
    const closed = new Promise<void>((resolve) => client.once('end', () => resolve()))
    open.add(closed)
    void closed.then(() => open.delete(closed))
  })
  const end = pool.end.bind(pool) as () => Promise<void>
  pool.end = (async () => {
    await end()
    await Promise.all(open)
  }) as typeof pool.end
  return pool
}
