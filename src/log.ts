// Structured JSON-lines logger. Callers pass ids and codes only: never addresses, subjects or bodies.
import { databaseErrorNames } from './database-error-names.ts'

export type Level = 'debug' | 'info' | 'warn' | 'error'
type Fields = Record<string, unknown>
type LogFn = (msg: string, fields?: Fields) => void

export interface Logger {
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  /** Whether `level` is written: lets a hot path skip building fields nobody will read. */
  enabled(level: Level): boolean
  child(bound: Fields): Logger
}

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

// Keys whose values are personal data or secrets; they are dropped even if a caller passes them.
const REDACTED = new Set([
  'to',
  'cc',
  'bcc',
  'from',
  'replyTo',
  'subject',
  'text',
  'html',
  'body',
  'address',
  'password',
  'secret',
  'token',
  'authorization',
  'url',
])

function serialize(fields: Fields): Fields {
  const out: Fields = {}
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    if (REDACTED.has(k)) {
      out[k] = '[redacted]'
    } else if (v instanceof Error) {
      // A server's error by its names only: its message, DETAIL or HINT can quote a row's values.
      out[k] = databaseErrorNames(v)
    } else {
      out[k] = typeof v === 'bigint' ? v.toString() : v
    }
  }
  return out
}

export function createLogger(
  min: Level,
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  bound: Fields = {},
): Logger {
  const at =
    (level: Level): LogFn =>
    (msg, fields = {}) => {
      if (RANK[level] < RANK[min]) return
      write(
        JSON.stringify({
          ts: new Date().toISOString(),
          level,
          msg,
          ...bound,
          ...serialize(fields),
        }),
      )
    }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    enabled: (level) => RANK[level] >= RANK[min],
    child: (more) => createLogger(min, write, { ...bound, ...serialize(more) }),
  }
}

export const silentLogger: Logger = createLogger('error', () => {})

/**
 * `base` whose lines also carry `late()`'s fields as they are when each line is written: a value
 * learnt after the logger was handed out (a drainer's lease key, known once it registered).
 */
export function withLateFields(base: Logger, late: () => Fields): Logger {
  const at =
    (level: Level): LogFn =>
    (msg, fields = {}) =>
      base[level](msg, { ...late(), ...fields })
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    enabled: base.enabled,
    child: (more) => withLateFields(base.child(more), late),
  }
}
