// Which database a URL leads to, as far as the URL tells: two MAILER_DATABASES entries that lead to one are refused.
import { parse as parseConnectionString } from 'pg-connection-string'

/**
 * What picks the database: host (case-insensitive; a socket directory), port (5432 when left
 * out), database name (the user's when left out), and the user and `options`, which a pooler's
 * one host may route by to each project's own database (Supabase's `postgres.<project>` user,
 * Neon's `options=endpoint=…`). Never the password. A URL the driver cannot parse has no
 * identity here (its own problem is named already).
 */
function identityOf(url: string): { key: string; words: string } | null {
  let c: ReturnType<typeof parseConnectionString>
  try {
    c = parseConnectionString(url)
  } catch {
    return null
  }
  const host = (c.host ?? '').toLowerCase()
  const port = c.port || '5432'
  const user = c.user ?? ''
  const database = c.database ?? user
  const options = c.options ?? ''
  return {
    key: JSON.stringify([host, port, database, user, options]),
    words: `${host.includes(':') ? `[${host}]` : host}:${port}/${database}`,
  }
}

/**
 * One problem per pair of entries whose URLs (either of each: `url`, `listenUrl`) lead to one
 * database: under two names it would be drained by two workers' worth of claims in one process,
 * and its rows, counts and API split between two names.
 */
export function sameDatabaseProblems(
  databases: ReadonlyArray<{ name: string; url: string; listenUrl: string }>,
): string[] {
  const problems: string[] = []
  const seen = new Map<string, string>()
  for (const d of databases) {
    const reported = new Set<string>()
    for (const url of new Set([d.url, d.listenUrl])) {
      const id = identityOf(url)
      if (!id) continue
      const first = seen.get(id.key)
      if (first === undefined) seen.set(id.key, d.name)
      else if (first !== d.name && !reported.has(first)) {
        reported.add(first)
        problems.push(
          `MAILER_DATABASES: "${first}" and "${d.name}" lead to the same database (${id.words}): under two names it would be claimed twice over and its rows split between the names; list it once`,
        )
      }
    }
  }
  return problems
}
