// Resolves `?db=NAME` to one configured database the token reaches; optional when it reaches exactly one.
import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import { AppError } from '../errors.ts'
import type { ApiDatabase, AppEnv } from './context.ts'
import { reachableDatabases } from './database-claim.ts'
import { takesOneValue } from './strict-query.ts'

export function selectDatabase(configured: ReadonlyArray<ApiDatabase>) {
  return createMiddleware<AppEnv>(async (c, next) => {
    // A token whose db claim names one reaches that one alone: the others are as if not configured.
    const databases = reachableDatabases(configured, c.get('principal'))
    const names = databases.map((d) => d.name).join(', ')
    // It runs before the route's query validation, which would refuse the same: the first of two
    // names must not pick a database (or answer 404 for it).
    const given = c.req.queries('db') ?? []
    if (given.length > 1) {
      const message = takesOneValue(given.length)
      throw new AppError('validation_failed', `db: ${message}`, {
        errors: [{ path: 'db', message }],
      })
    }
    const name = given[0]
    if (name === undefined || name === '') {
      if (databases.length !== 1) {
        throw new AppError('validation_failed', `db is required: one of ${names}`, {
          errors: [{ path: 'db', message: `required: one of ${names}` }],
        })
      }
      useDatabase(c, databases[0]!)
      return next()
    }
    const found = databases.find((d) => d.name === name)
    if (!found)
      throw new AppError('database_unknown', `no database named "${name}"; configured: ${names}`)
    useDatabase(c, found)
    return next()
  })
}

// The request's lines about rows then carry `db` beside `outboxId`, as the worker's do: with several
// databases an id alone names a row in each.
function useDatabase(c: Context<AppEnv>, database: ApiDatabase) {
  c.set('database', database)
  c.set('log', c.get('log').child({ db: database.name }))
}
