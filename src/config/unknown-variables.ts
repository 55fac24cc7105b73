// Variables set for outbox-mailer that it never reads (a misspelt or made-up name), found so they are named, not silently ignored.
import { ENV_VARS } from './env-vars.ts'

const KNOWN = new Set(ENV_VARS.map((v) => v.name))

/**
 * Prefixes that only this service's variables carry in its environment: a name with one of them
 * that it does not read is a mistake (GRAPH_MAILBOX_LOOKUPS, MAILER_DATABASE, WORKER_CONCURENCY).
 * Not LOG_, HOST or PORT: other software's variables share those (a platform sets HOSTNAME).
 */
const OURS =
  /^(MAILER_|MAIL_|MAILBOX_|GRAPH_|API_JWT|API_JWKS|LISTEN_|WORKER_|LEASE_|HEARTBEAT_|RETRY_|POLL_|SHUTDOWN_|THROTTLE_|METRICS_|AMBIGUOUS_|MIGRATE_)/

/**
 * Names close enough to be a slip of a known one (DATABSE_URL, LOG_LEVL, a lowercase database_url)
 * are named whatever their prefix. Only known names of 8 characters or more: a short one is within
 * two edits of unrelated variables (HOST of HOME).
 */
const MAX_EDITS = 2
const MIN_FUZZY_LENGTH = 8

export interface UnknownVariable {
  name: string
  /** The variable it most likely meant, when one is close. */
  meant: string | null
}

/** The variables of `env` that look meant for outbox-mailer but that it does not read, by name. */
export function unknownVariables(env: Record<string, string | undefined>): UnknownVariable[] {
  const found: UnknownVariable[] = []
  for (const name of Object.keys(env).sort()) {
    if (env[name] === undefined || KNOWN.has(name)) continue
    const meant = closestKnown(name)
    if (meant !== null || OURS.test(name)) found.push({ name, meant })
  }
  return found
}

/** One sentence per variable, naming it and never its value. */
export function unknownVariableText(v: UnknownVariable): string {
  const hint = v.meant ? `did you mean ${v.meant}?` : '`outbox-mailer --help` lists those it reads'
  return `${v.name} is set, but outbox-mailer reads no variable of that name: it is ignored (${hint})`
}

function closestKnown(name: string): string | null {
  const upper = name.toUpperCase()
  let best: string | null = null
  let bestEdits = MAX_EDITS + 1
  for (const known of KNOWN) {
    if (known.length < MIN_FUZZY_LENGTH) continue
    const edits = editDistance(upper, known, bestEdits)
    if (edits < bestEdits) {
      best = known
      bestEdits = edits
    }
  }
  return best
}

/** Optimal string alignment distance (a swap of two neighbours is one edit), or `limit` past it. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    let rowMin = i
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, before[j - 2]! + 1)
      }
      current.push(d)
      rowMin = Math.min(rowMin, d)
    }
    if (rowMin >= limit) return limit
    before = previous
    previous = current
  }
  return Math.min(previous[b.length]!, limit)
}
