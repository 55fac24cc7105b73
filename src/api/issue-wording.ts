// A validation issue in zod's default English said as the API's own messages are: what is wrong, what is accepted.
import { jsonKind } from '../config/json-kind.ts'

type Issue = {
  path: PropertyKey[]
  message: string
  code?: string
  expected?: string
  origin?: string
  minimum?: number | bigint
  maximum?: number | bigint
  inclusive?: boolean
  values?: unknown[]
}

// The openings of zod's English messages; every message a schema of this API sets starts otherwise
// (lower case: "must be ...", "is not ..."), and keeps its wording.
const ZOD_DEFAULT = /^(Invalid|Too (small|big))\b/

// A JSON value's kind, as a client's JSON names it (zod says "record", "int").
const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  record: 'an object of names to values',
  array: 'an array',
  null: 'null',
}

const TOO_LARGE = 'a number too large to read (1e400 and the like: past ±1.8e308)'

/** What a JSON value is (json-kind.ts, as a variable's JSON is named); undefined when the field is not there. */
function kindOf(value: unknown): string | undefined {
  if (value === undefined) return undefined
  // JSON.parse reads 1e400 as Infinity, which zod refuses as no number: say why, not "a number".
  if (typeof value === 'number' && !Number.isFinite(value)) return TOO_LARGE
  return jsonKind(value)
}

const plural = (n: number | bigint, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`

/** A bound's message: the string's characters, the array's items, the number itself. */
function bound(issue: Issue, side: 'least' | 'most'): string | undefined {
  const n = side === 'least' ? issue.minimum : issue.maximum
  if (n === undefined) return undefined
  if (issue.origin === 'string') {
    return side === 'least' && n === 1
      ? 'must not be empty'
      : `must be at ${side} ${plural(n, 'character')}`
  }
  if (issue.origin === 'array' || issue.origin === 'set') {
    return `must hold at ${side} ${plural(n, 'item')}`
  }
  if (issue.inclusive === false) return `must be ${side === 'least' ? 'greater' : 'less'} than ${n}`
  return `must be at ${side} ${n}`
}

/**
 * The issue's message in the API's wording, `input` the request part it was found in (the body,
 * the query, the headers); zod's default when no rule here says it better, and any message a
 * schema set, as it is.
 */
export function worded(issue: Issue, input: unknown): string {
  if (!ZOD_DEFAULT.test(issue.message)) return issue.message
  switch (issue.code) {
    case 'invalid_type': {
      const want = EXPECTED[issue.expected ?? ''] ?? issue.expected
      const given = kindOf(valueAt(input, issue.path))
      if (given === undefined) return `is required: ${want}`
      // 1.5 for a whole number is a number still: "not a number" would misname it.
      if (issue.expected === 'int' && given === 'a number') return `must be ${want}`
      return `must be ${want}, not ${given}`
    }
    case 'invalid_value':
      return issue.values ? `must be one of ${issue.values.join(', ')}` : issue.message
    case 'too_small':
      return bound(issue, 'least') ?? issue.message
    case 'too_big':
      return bound(issue, 'most') ?? issue.message
    default:
      return issue.message
  }
}

// A query value is quoted to this many characters (a URL may carry 15 KB): enough to recognise it.
const GIVEN_CHARS = 60

// The query parameters whose values are a closed set or a format: the value refused is quoted. A
// text filter (tenant, dedupeKey, ...) is refused for what its message names (empty, U+0000), and
// may hold what its client keeps private (a dedupe key made of an address): never quoted.
const QUOTED_PARAMETERS = new Set([
  'status',
  'order',
  'limit',
  'createdFrom',
  'createdTo',
  'sentFrom',
  'sentTo',
])

/**
 * A query parameter's message with the value it refused: `status=a&status=b` is two problems,
 * each naming its value, not one "must be one of ..." that says neither; a parameter of one value
 * given several times quotes them, in order. An empty value and an unknown name (wrong whatever its
 * value) are not quoted.
 */
export function withGivenValue(message: string, query: unknown, path: PropertyKey[]): string {
  if (!QUOTED_PARAMETERS.has(String(path[0]))) return message
  // A value given once that its schema made a list of one (status) is at the parameter itself.
  const value = valueAt(query, path) ?? valueAt(query, path.slice(0, 1))
  if (Array.isArray(value)) return `${message} (${value.map(quoted).join(', ')})`
  if (typeof value !== 'string' || value === '') return message
  return `${message} (given ${quoted(value)})`
}

/** A value as JSON text, past GIVEN_CHARS characters cut and its length said. */
export function quoted(value: unknown): string {
  const chars = [...String(value)]
  if (chars.length <= GIVEN_CHARS) return JSON.stringify(String(value))
  const head = JSON.stringify(chars.slice(0, GIVEN_CHARS).join('')).slice(0, -1)
  return `${head}…", ${chars.length} characters`
}

/** The value at an issue's path, when the path leads through objects and arrays to one. */
function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let at = input
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined
    at = (at as Record<PropertyKey, unknown>)[key]
  }
  return at
}
