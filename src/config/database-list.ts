// Which databases to drain: DATABASE_URL (with LISTEN_DATABASE_URL), or the MAILER_DATABASES list.
import { z } from 'zod'
import { sameDatabaseProblems } from './database-identity.ts'
import { pgUrl } from './database-url.ts'
import type { Accepted, EnvValues } from './env-schema.ts'
import { jsonKind } from './json-kind.ts'
import { jsonSyntaxError, TOO_DEEP, whereJsonBreaks } from './json-syntax-error.ts'
import { maskedExcerpt } from './masked-excerpt.ts'

export interface DatabaseConfig {
  name: string
  url: string
  listenUrl: string
  /** MAILER_DATABASES listed it: its URLs are that variable's, whatever its name (`default` too). */
  listed?: true
  /** The direct URL was given (LISTEN_DATABASE_URL, an entry's listenUrl), maybe the same as `url`. */
  listenUrlGiven?: true
}

const DatabasesJson = z
  .array(
    z
      .object({
        name: z.string().regex(/^[a-z0-9_-]{1,40}$/, 'must be 1-40 of a-z 0-9 _ -'),
        url: pgUrl,
        listenUrl: pgUrl.optional(),
      })
      .strict(),
  )
  .min(1, 'must list at least one database')

/** Where the value breaks, quoted with its passwords masked (it holds the URLs), and the shape it must have. */
function notJson(value: string): string {
  const at = jsonSyntaxError(value)
  const where =
    at === null
      ? ''
      : at === TOO_DEEP
        ? whereJsonBreaks(at)
        : `${whereJsonBreaks(at)}, here: ${maskedExcerpt(value, at.offset, '>>>')}`
  return `MAILER_DATABASES: is not valid JSON${where}; it must be a JSON array like [{"name":"main","url":"postgres://…","listenUrl":"postgres://…"}] (listenUrl optional; in a shell, quote it with single quotes)`
}

const ENTRY_KEYS = 'each entry has a "name" and a "url", and may have a "listenUrl"'

/**
 * One problem of the list, named as a reader writes it (`MAILER_DATABASES[1].url`), saying what to
 * write instead of the schema's words. A bad name is quoted (names are no secret) unless it could
 * hold a URL's password; a URL never is.
 */
function entryProblem(issue: z.core.$ZodIssue, json: unknown): string {
  const [index, key, ...rest] = issue.path
  if (index === undefined) {
    const shape =
      issue.code === 'invalid_type'
        ? 'must be a JSON array of entries, [{"name":"main","url":"postgres://…"}], even for one database'
        : issue.message
    return `MAILER_DATABASES[]: ${shape}`
  }
  const where = `MAILER_DATABASES[${String(index)}]${[key, ...rest]
    .filter((k) => k !== undefined)
    .map((k) => `.${String(k)}`)
    .join('')}`
  const entry = Array.isArray(json) ? (json[Number(index)] as Record<string, unknown>) : undefined
  const given =
    key === undefined || entry === null || typeof entry !== 'object'
      ? undefined
      : entry[key as string]
  if (issue.code === 'unrecognized_keys') {
    return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (${ENTRY_KEYS})`
  }
  if (issue.code === 'invalid_type' && key === undefined)
    return `${where}: must be an object (${ENTRY_KEYS}), not ${jsonKind(entry)}`
  if (issue.code === 'invalid_type' && given === undefined)
    return `${where}: is required (${ENTRY_KEYS})`
  // Every key of an entry holds text: said so, not zod's "expected string, received number".
  if (issue.code === 'invalid_type') return `${where}: must be a string, not ${jsonKind(given)}`
  if (key === 'name' && typeof given === 'string' && !/[:@]/.test(given)) {
    return `${where}: ${JSON.stringify(given.length > 60 ? `${given.slice(0, 60)}…` : given)} ${issue.message} (lower case, no blank)`
  }
  return `${where}: ${issue.message}`
}

/** The configured databases; `required` false lets a command that connects to none go without. */
export function databaseList(
  e: EnvValues,
  ok: Accepted,
  required: boolean,
): { databases: DatabaseConfig[]; problems: string[] } {
  const problems: string[] = []
  const databases: DatabaseConfig[] = []
  if (e.MAILER_DATABASES !== undefined) {
    if (e.DATABASE_URL !== undefined || !ok('DATABASE_URL')) {
      problems.push('MAILER_DATABASES and DATABASE_URL are both set: use one of them')
    }
    // Applying it to every database would point them all at one; dropping it would LISTEN elsewhere.
    if (e.LISTEN_DATABASE_URL !== undefined || !ok('LISTEN_DATABASE_URL')) {
      problems.push(
        'LISTEN_DATABASE_URL is ignored with MAILER_DATABASES: give each database its own "listenUrl"',
      )
    }
    let json: unknown
    try {
      json = JSON.parse(e.MAILER_DATABASES)
    } catch {
      problems.push(notJson(e.MAILER_DATABASES))
    }
    if (json !== undefined) {
      const dbs = DatabasesJson.safeParse(json)
      if (!dbs.success) {
        for (const issue of dbs.error.issues) problems.push(entryProblem(issue, json))
      } else {
        const names = new Set<string>()
        for (const d of dbs.data) {
          if (names.has(d.name)) problems.push(`MAILER_DATABASES: name "${d.name}" is repeated`)
          names.add(d.name)
          databases.push({
            name: d.name,
            url: d.url,
            listenUrl: d.listenUrl ?? d.url,
            listed: true,
            ...(d.listenUrl !== undefined ? { listenUrlGiven: true as const } : {}),
          })
        }
        problems.push(...sameDatabaseProblems(databases))
      }
    }
  } else if (e.DATABASE_URL !== undefined) {
    databases.push({
      name: 'default',
      url: e.DATABASE_URL,
      listenUrl: e.LISTEN_DATABASE_URL ?? e.DATABASE_URL,
      ...(e.LISTEN_DATABASE_URL !== undefined ? { listenUrlGiven: true as const } : {}),
    })
  } else if (required && ok('DATABASE_URL')) {
    problems.push('DATABASE_URL (or MAILER_DATABASES) is required')
  }
  return { databases, problems }
}

/**
 * The variable that holds `d`'s URL (`which`), for a failure to name: the operator edits a variable,
 * and with a direct URL apart from the pooled one (the deploy guide's setup) either may be the wrong one.
 */
export function urlVariable(
  d: DatabaseConfig,
  databases: readonly DatabaseConfig[],
  which: 'url' | 'listenUrl',
): string {
  if (!d.listed && databases.length === 1 && d.name === 'default') {
    return which === 'url' ? 'DATABASE_URL' : 'LISTEN_DATABASE_URL'
  }
  return `MAILER_DATABASES ${d.name}.${which}`
}

/** Each URL of `databases` once (a direct URL the same as its pooled one is the pooled one), by database and variable. */
export function databaseUrls(
  databases: readonly DatabaseConfig[],
): { db: string; variable: string; url: string }[] {
  return databases.flatMap((d) =>
    (['url', 'listenUrl'] as const)
      .filter((which) => which === 'url' || d.listenUrl !== d.url)
      .map((which) => ({ db: d.name, variable: urlVariable(d, databases, which), url: d[which] })),
  )
}
