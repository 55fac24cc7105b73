// Every JSON line the chaos's mailer processes logged, parsed, for the figures counted from their logs.
import { readFileSync } from 'node:fs'
import type { Mailer } from '../harness.ts'

/** A log line's fields as the mailers write them (src/log.ts): `msg` and the line's own. */
export type LogEntry = { msg?: string } & Record<string, unknown>

/** Each process's lines in its order, the processes in `mailers`' order; a line not JSON is skipped. */
export function* mailerLogEntries(
  mailers: readonly Pick<Mailer, 'logPath'>[],
): Generator<LogEntry> {
  for (const m of mailers) {
    let text = ''
    try {
      text = readFileSync(m.logPath, 'utf8')
    } catch {}
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        yield JSON.parse(line) as LogEntry
      } catch {}
    }
  }
}
