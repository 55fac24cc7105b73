// Whether a template body renders blank for every row, read from mustache's own parse: the renderer's view of sql/0177's mailer.template_body_renders_blank.
import Mustache from 'mustache'
import { isBlank } from './blank-body.ts'

type Token = [string, string, number, number, Token[]?]

// No variable ({{name}}, {{{name}}}, {{&name}}: a column may fill it) and no text but blanks, in a
// section or out of one (a row may open it); comments and partials (none is given) render nothing.
const blankTokens = (tokens: Token[]): boolean =>
  tokens.every((t) =>
    t[0] === 'text'
      ? isBlank(t[1])
      : t[0] === '#' || t[0] === '^'
        ? blankTokens(t[4] ?? [])
        : t[0] === '!' || t[0] === '>' || t[0] === '/',
  )

/**
 * True when `tpl` renders nothing but blanks whatever the row (a comment alone, sections holding
 * nothing). False when it may render something, when mustache cannot parse it (refused otherwise,
 * template_error) or when it changes delimiters ({{=…=}}), which sql/0177 does not follow either.
 */
export function rendersBlankForEveryRow(tpl: string): boolean {
  if (tpl.includes('{{=')) return false
  try {
    return blankTokens(Mustache.parse(tpl) as Token[])
  } catch {
    return false
  }
}
