// Finds timestamp arithmetic in SQL text that Postgres 16 and older refuse for an infinite timestamp.
import ts from 'typescript'

/**
 * One place where SQL subtracts two timestamps: `where` (a function, or file), and the line it is
 * on, comments cut and whitespace collapsed (an extract spanning lines: the whole extract).
 * On Postgres 16 and older `'infinity' - now()`, `now() - 'infinity'`, `age('infinity')` and
 * every other difference with an infinite side are errors (22008, timestamp_mi); 17 answers an
 * infinite interval. mailer.ms_until (0107) answers Infinity on every version.
 */
export interface TimeArithmetic {
  where: string
  line: string
}

const NOW = String.raw`(?:now\(\)|current_timestamp|clock_timestamp\(\)|statement_timestamp\(\)|transaction_timestamp\(\)|localtimestamp)`
// x - now(): x is a timestamp (an interval minus a timestamp is no operator).
const MINUS_NOW = new RegExp(String.raw`-\s*${NOW}`, 'i')
// now() - x, unless x is written as an interval (now() - interval '1 day', now() - make_interval(...)).
const NOW_MINUS = new RegExp(String.raw`${NOW}\s*-\s*(?!interval\b|make_interval\s*\(|\s)`, 'i')
const AGE = /\bage\s*\(/i
const EXTRACT_EPOCH = /\bextract\s*\(\s*epoch\s+from\b/gi
// A minus between two operands, not one before an interval written out.
const MINUS = /[\w)\]'"]\s*-\s*(?!interval\b|make_interval\s*\(|[\d.]+\s*\)|-)/i

const collapse = (s: string) => s.replace(/\s+/g, ' ').trim()

/** SQL comments cut (`--` to the line's end, and `/* … *\/`), line breaks kept. */
function withoutComments(sql: string): string {
  return sql.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/--[^\n]*/g, '')
}

/** The text of extract(epoch from …) from its start to its closing parenthesis. */
function extractAt(sql: string, start: number): string {
  let depth = 0
  for (let i = sql.indexOf('(', start); i < sql.length; i++) {
    if (sql[i] === '(') depth++
    else if (sql[i] === ')' && --depth === 0) return sql.slice(start, i + 1)
  }
  return sql.slice(start)
}

/** Every timestamp difference in `sql` (see TimeArithmetic); `where` names its source. */
export function timeArithmetic(where: string, sql: string): TimeArithmetic[] {
  const text = withoutComments(sql)
  const found: TimeArithmetic[] = []
  for (const line of text.split('\n')) {
    if (MINUS_NOW.test(line) || NOW_MINUS.test(line) || AGE.test(line)) {
      found.push({ where, line: collapse(line) })
    }
  }
  // extract(epoch from a - b) with neither side now(): a difference of two columns.
  for (const m of text.matchAll(EXTRACT_EPOCH)) {
    const whole = extractAt(text, m.index)
    const inner = whole.slice(m[0].length, -1)
    if (MINUS.test(inner) && !MINUS_NOW.test(inner) && !NOW_MINUS.test(inner)) {
      found.push({ where, line: collapse(whole) })
    }
  }
  return found
}

/** SQL in a file's statements outside dollar-quoted bodies (a function's body is read where it is in force). */
export function outsideBodies(sql: string): string {
  return sql.replace(/\$([A-Za-z_]*)\$[\s\S]*?\$\1\$/g, (body) => body.replace(/[^\n]/g, ' '))
}

/**
 * The text of every string and template literal of a TypeScript file, one after another (a
 * template's placeholders as `$n`): where src writes its SQL, and nothing of its own arithmetic.
 */
export function literalsOf(fileName: string, source: string): string {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true)
  const parts: string[] = []
  const walk = (node: ts.Node) => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) parts.push(node.text)
    else if (ts.isTemplateExpression(node)) {
      parts.push(
        [node.head.text, ...node.templateSpans.map((s, i) => `$${i + 1}${s.literal.text}`)].join(
          '',
        ),
      )
    }
    ts.forEachChild(node, walk)
  }
  walk(file)
  return parts.join('\n')
}
