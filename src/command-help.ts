// A command's `--help` text, printed from its entry in the commands table, wrapped to 100 columns.
import type { CommandSpec, ExitName } from './command-spec.ts'
import { ENV_VARS } from './config/env-vars.ts'
import { EXIT } from './errors.ts'

/** Words of `text` in lines of at most `width` characters: the first after `first`, the rest after `indent`. */
function wrap(text: string, indent: string, first = indent, width = 100): string {
  const lines: string[] = []
  let line = first
  let empty = true
  for (const word of text.split(' ')) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line)
      line = indent
      empty = true
    }
    line += `${empty ? '' : ' '}${word}`
    empty = false
  }
  lines.push(line)
  return lines.join('\n')
}

/** A command's help: what it does, its flags, the variables it reads, its exit codes, an example. */
export function commandHelp(spec: CommandSpec): string {
  const flags = Object.entries(spec.flags).map(([name, f]) =>
    wrap(f.does, ' '.repeat(28), `  ${(f.shown ?? name).padEnd(26)}`),
  )
  const env = spec.env.map((name) => {
    const v = ENV_VARS.find((e) => e.name === name)
    if (!v) throw new Error(`${name} is not in ENV_VARS`)
    return wrap(`${v.meaning} (default: ${v.default})`, ' '.repeat(28), `  ${name.padEnd(26)}`)
  })
  const exits = Object.entries(spec.exits).map(([name, meaning]) =>
    wrap(meaning, '    ', `  ${EXIT[name as ExitName]} `),
  )
  return [
    `usage: ${spec.usage}`,
    '',
    wrap(spec.does, ''),
    '',
    flags.length ? `Flags:\n${flags.join('\n')}` : 'Flags: none (any argument is refused, exit 2)',
    '',
    `Environment (outbox-mailer --help lists every variable):\n${env.join('\n')}`,
    '',
    `Exit codes:\n${exits.join('\n')}`,
    '',
    `Example:\n  ${spec.example}`,
  ].join('\n')
}
