// A Kysely on a test database's pool whose every query passes through a test's hook (to cut, hold back or record it).
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import type { TestDb } from './db.ts'

/**
 * A Kysely on the test pool whose queries pass through `through`: to cut one as a lost connection
 * does, or to hold one back until the test has seen what must come first.
 */
export function throughQueries(
  t: TestDb,
  through: (run: () => Promise<unknown>, text: string, values: unknown[]) => Promise<unknown>,
): Kysely<Database> {
  return new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: new Proxy(t.pool, {
        get(pool, prop, receiver) {
          if (prop !== 'connect') return Reflect.get(pool, prop, receiver)
          return async () => {
            const client = await pool.connect()
            return new Proxy(client, {
              get(c, p, r) {
                if (p !== 'query') return Reflect.get(c, p, r)
                return (text: string, values: unknown[]) =>
                  through(() => c.query(text, values), text, values)
              },
            })
          }
        },
      }),
    }),
  })
}
