// The compiled binary started as a worker sending through a fake Graph (certificate credential, no pacing, debug log), its stdout read as it grows, and its last JSON line.
import { type FakeGraph, graphEnvFor, type TestCertificate } from './fake-graph.ts'
import { type GrowingOutput, growingOutput } from './growing-output.ts'

/** `serve --role worker` on `databaseUrl`; `env` adds to or overrides what every such test sets. */
export function spawnGraphBinaryWorker(
  bin: string,
  o: {
    databaseUrl: string
    fake: FakeGraph
    cert: TestCertificate
    mailFrom: string
    env?: Record<string, string>
  },
): { p: Bun.Subprocess<'ignore', 'pipe', 'pipe'>; stdout: GrowingOutput } {
  const p = Bun.spawn([bin, 'serve', '--role', 'worker'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: o.databaseUrl,
      ...graphEnvFor(o.fake),
      MAIL_FROM: o.mailFrom,
      GRAPH_CERTIFICATE: o.cert.certPem,
      GRAPH_PRIVATE_KEY: o.cert.keyPem,
      MAILBOX_RATE_PER_MINUTE: '0',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'debug',
      ...o.env,
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { p, stdout: growingOutput(p.stdout) }
}

/** The last JSON line of an ended `stdout`, and the row ids its `unrecorded` names (every database's). */
export function lastLine(stdout: GrowingOutput): {
  line: Record<string, unknown>
  unrecorded: string[]
} {
  const line = JSON.parse(
    stdout
      .text()
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .at(-1)!,
  ) as Record<string, unknown>
  const unrecorded = ((line.unrecorded ?? []) as { ids: string[] }[]).flatMap((u) => u.ids)
  return { line, unrecorded }
}
