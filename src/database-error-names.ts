// What a log line or a command's output may say of a database error: its SQLSTATE and the names Postgres gives (table, constraint, function, statement), never its message, DETAIL or HINT, which can quote a row's values.
/** The innermost function of a PL/pgSQL or SQL context line: its name and argument types only. */
const CONTEXT_FUNCTION = /(?:PL\/pgSQL|SQL) function "?([^\s"(]+\([^)]*\))/

/** The statement name preparingClient gives a marked query's error (prepared-statements.ts). */
export const STATEMENT_NAME = 'statement'

const NAMED = ['severity', 'schema', 'table', 'column', 'dataType', 'constraint'] as const

/**
 * A server's error (a SQLSTATE and a severity): its code, the object names it carries, the
 * function it was raised in (from its context), the C routine that raised it and our statement's
 * name, each only when given. Anything else (ours, pg's own, a socket's: no row data in their
 * words): name, message, code. The logger writes every Error so (log.ts).
 */
export function databaseErrorNames(err: unknown): Record<string, unknown> {
  const e = (err ?? {}) as Record<string, unknown>
  const code = e.code
  if (!isServerError(e)) {
    return err instanceof Error ? { name: err.name, message: err.message, code } : { code }
  }
  const names: Record<string, unknown> = { code }
  for (const k of NAMED) if (typeof e[k] === 'string') names[k] = e[k]
  const fn = typeof e.where === 'string' ? CONTEXT_FUNCTION.exec(e.where)?.[1] : undefined
  if (fn) names.function = fn
  if (typeof e.routine === 'string') names.routine = e.routine
  if (typeof e[STATEMENT_NAME] === 'string') names.statement = e[STATEMENT_NAME]
  return names
}

const isServerError = (e: Record<string, unknown>) =>
  typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string'

// A PL/pgSQL raise or assert says what its author wrote (a trigger's `raise … %`, new.…), a data
// exception (class 22) the value it could not take (`invalid input syntax for type integer: "…"`):
// either can quote a row's values. Postgres's other messages name objects, never values (a row's
// are in DETAIL, never said), and a pooler's (no routine: PgBouncer's, Supavisor's) see no rows.
const QUOTING_ROUTINES = new Set(['exec_stmt_raise', 'exec_stmt_assert'])

/**
 * What a person is told (a command's output, readiness) in place of a server error's message that
 * can quote a row's values: its names. Null when the message may be said as it is (any other error).
 */
export function namesInPlaceOfMessage(err: unknown): string | null {
  const e = (err ?? {}) as Record<string, unknown>
  if (!isServerError(e)) return null
  const code = e.code as string
  const raised = typeof e.routine === 'string' && QUOTING_ROUTINES.has(e.routine)
  if (!raised && !code.startsWith('22') && !code.startsWith('P0')) return null
  const { code: _, severity: __, ...names } = databaseErrorNames(err)
  const named = Object.entries(names).map(([k, v]) => `${k} ${v}`)
  return `SQLSTATE ${code} (${[...named, "message not shown: it can quote a row's values"].join(', ')})`
}
