// The chaos soak's token line: each count read from the fake's record, the rows' history and the workers' logs, none from timing.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AttemptEntry } from '../faults/chaos/outcome.ts'
import { newChaosRecord } from '../faults/chaos/record.ts'
import { tokenCounts } from '../faults/chaos/token-counts.ts'
import { startFakeGraph } from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const dir = await mkdtemp(join(tmpdir(), 'chaos-token-counts-'))
afterAll(() => rm(dir, { recursive: true, force: true }))

const entry = (id: string, outcome: string, error_code: string | null): AttemptEntry => ({
  outbox_id: id,
  attempt: 1,
  worker_id: 'vm:1:a',
  outcome,
  error_code,
  error: null,
  http_status: null,
  kind: 'attempt',
  started: false,
  finished_ms: 0,
})
const line = (msg: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ ts: '2026-12-07T17:00:00.000Z', level: 'debug', msg, ...fields })

test('revocations by Entra answer, hung and refused token requests, 401s, token_slow rows and give-backs, turns given up', async () => {
  const secret = randomUUID()
  const fake = await startFakeGraph({ clientSecret: secret })
  try {
    const token = (signal?: AbortSignal) =>
      fetch(`${fake.authorityUrl}/${fake.tenantId}/oauth2/v2.0/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: fake.clientId,
          scope: `${fake.authorityUrl}/.default`,
          client_secret: secret,
        }),
        ...(signal && { signal }),
      })
    const issued = (await (await token()).json()) as { access_token: string }
    // A revocation with Entra hung (as chaos/faults.ts revokeTokens sets it), then one with Entra 503.
    fake.setFaults({
      token: ['hang', { status: 503, error: 'temporarily_unavailable', aadsts: 90033 }],
    })
    fake.revokeTokens('invalid')
    const abort = new AbortController()
    const hung = token(abort.signal).catch(() => null)
    for (let i = 0; i < 200 && fake.tokenRequests.length < 2; i++) await Bun.sleep(10)
    abort.abort()
    expect(await hung).toBeNull()
    expect((await token()).status).toBe(503)
    const revoked = await fetch(`${fake.apiUrl}/users/a@contoso.example/sendMail`, {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.access_token}` },
      body: '{}',
    })
    expect(revoked.status).toBe(401)

    const record = newChaosRecord()
    record.figures.revokes = 2
    record.revokedWith.hangs = 1
    record.revokedWith['503'] = 1
    // Row 5 went back token_slow while it already waited for a token: no token_slow entry of its own.
    const historyOf = new Map([
      // Two runs of token waits (the history records each run once), then sent.
      ['1', [entry('1', 'throttled', 'token_slow'), entry('1', 'throttled', 'token_slow')]],
      ['2', [entry('2', 'throttled', 'token_slow'), entry('2', 'sent', null)]],
      [
        '3',
        [entry('3', 'throttled', 'token_timeout'), entry('3', 'throttled', 'graph_unauthorized')],
      ],
      ['4', [entry('4', 'throttled', 'mailbox_paused'), entry('4', 'retry', 'http_500')]],
      ['5', [entry('5', 'throttled', 'token_http_503')]],
    ])
    const log = join(dir, 'mailer.log')
    await writeFile(
      log,
      [
        'not json: the runtime’s own line',
        line('settled', { outboxId: '1', code: 'token_slow' }),
        line('settled', { outboxId: '1', code: 'token_slow' }),
        line('settled', { outboxId: '2', code: 'token_slow' }),
        line('settled', { outboxId: '5', code: 'token_slow' }),
        line('settled', { outboxId: '3', code: 'token_timeout' }),
        line('send will be retried', { outboxId: '4', code: 'token_slow' }),
        line('rows waiting for the block named', { marked: 2, code: 'AADSTS7000222' }),
        line('rows sent back for a pacing turn due and named by the block', { paced: 3 }),
        '',
      ].join('\n'),
    )
    expect(tokenCounts(record, fake, historyOf, [{ logPath: log }])).toEqual({
      revokes: 2,
      revokedEntraHung: 1,
      revokedEntra503: 1,
      revokedEntraFine: 0,
      tokenRequests: 3,
      tokensIssued: 1,
      entraHung: 1,
      entraRefused: 1,
      graph401: 1,
      tokenSlowRows: 3,
      tokenSlowEntries: 3,
      tokenSlowGiveBacks: 4,
      tokenWaitRows: 2,
      graphUnauthorizedRows: 1,
      blockedRowsNamed: 2,
      turnsGivenUpAtRefusal: 3,
    })
  } finally {
    await fake.stop()
  }
})
