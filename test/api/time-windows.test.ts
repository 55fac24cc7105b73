// The time-range filters (createdFrom/To, sentFrom/To) of the list and the bulk actions, to the microsecond Postgres keeps.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, send, setState } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

const listed = async (query: string) => {
  const r = await send(s.app, 'GET', `/v1/outbox?${query}`, { token: s.tk })
  expect([query, r.status]).toEqual([query, 200])
  return (r.body as { items: { id: string }[] }).items.map((i) => i.id)
}

const matched = async (filter: Record<string, unknown>) => {
  const r = await send(s.app, 'POST', '/v1/outbox/retry', {
    token: s.tk,
    body: { filter: { status: ['failed'], ...filter }, dryRun: true },
  })
  expect(r.status).toBe(200)
  return (r.body as { matched: number }).matched
}

/** Two failed rows, created and sent 200 µs and 800 µs into a millisecond. */
async function rowsInOneMillisecond() {
  const early = await enqueueSql(s.t.pool)
  const late = await enqueueSql(s.t.pool)
  for (const [id, at] of [
    [early, '2030-01-01T00:00:00.000200Z'],
    [late, '2030-01-01T00:00:00.000800Z'],
  ] as const) {
    await setState(s.t.pool, id, 'failed')
    await s.t.pool.query(
      'update mailer.email_outbox set created_at = $2, sent_at = $2 where id = $1',
      [id, at],
    )
  }
  return { early, late }
}

describe('a bound finer than a millisecond', () => {
  test('splits the rows of one millisecond in the list: [from, to) as given, not cut to the millisecond', async () => {
    const { early, late } = await rowsInOneMillisecond()
    const mid = encodeURIComponent('2030-01-01T00:00:00.000500Z')
    expect(await listed(`createdTo=${mid}`)).toEqual([early])
    expect(await listed(`createdFrom=${mid}`)).toEqual([late])
    // With an offset, the same instant.
    const offset = encodeURIComponent('2030-01-01T01:30:00.000500+01:30')
    expect(await listed(`createdFrom=${offset}`)).toEqual([late])
  })

  test('splits them in the bulk actions’ filter too', async () => {
    await rowsInOneMillisecond()
    expect(await matched({ createdTo: '2030-01-01T00:00:00.000500Z' })).toBe(1)
    expect(await matched({ createdFrom: '2030-01-01T00:00:00.000500Z' })).toBe(1)
    expect(await matched({ sentFrom: '2030-01-01T00:00:00.0005Z' })).toBe(1)
    expect(await matched({ sentTo: '2030-01-01T00:00:00.0009Z' })).toBe(2)
  })
})

const TIME_BOUND =
  'must be an ISO-8601 timestamp with a time zone (Z, ±hh, ±hhmm or ±hh:mm), as options.sendAt takes it, e.g. 2030-01-01T00:00:00Z'

describe('a bound that is not a timestamp with a time zone', () => {
  const problem = async (query: string) => {
    const r = await send(s.app, 'GET', `/v1/outbox?${query}`, { token: s.tk })
    const body = r.body as { detail: string; errors: { path: string; message: string }[] }
    return { status: r.status, errors: body.errors }
  }

  test('is a 400 saying what a bound is, with an example: a date alone, a time without a zone', async () => {
    for (const bound of ['2030-01-01', '2030-01-01T00:00:00']) {
      expect(await problem(`createdFrom=${bound}`)).toEqual({
        status: 400,
        errors: [
          {
            path: 'createdFrom',
            message: `${TIME_BOUND} (given "${bound}")`,
          },
        ],
      })
    }
  })

  test('a form options.sendAt takes (to the minute, a space for T, an offset ±hh or ±hhmm) is taken, in the list and the bulk actions', async () => {
    // A timestamp enqueued as sendAt could not be filtered by as written: the filters took RFC 3339 alone.
    const { early, late } = await rowsInOneMillisecond()
    for (const [query, rows] of [
      ['createdTo=2030-01-01T00:01Z', [late, early]],
      [`createdTo=${encodeURIComponent('2030-01-01 00:01Z')}`, [late, early]],
      [`createdTo=${encodeURIComponent('2030-01-01T01:01+01')}`, [late, early]],
      [`createdTo=${encodeURIComponent('2030-01-01T01:00+0100')}`, []],
      [`createdFrom=${encodeURIComponent('2030-01-01 01:00:00.0005+01')}`, [late]],
    ] as const) {
      expect([query, await listed(query)]).toEqual([query, [...rows]])
    }
    expect(await matched({ sentFrom: '2030-01-01 01:00:00.0005+01' })).toBe(1)
    expect(await matched({ sentTo: '2029-12-31T19:00-0500' })).toBe(0)
  })

  test('24:00 and a second 60, as sendAt and Postgres take them, are the next day and the next minute', async () => {
    // Refused as "no calendar has" them, though enqueue takes either as sendAt (Postgres: the
    // next day's midnight, the next minute's start) and RFC 3339 writes a leap second so.
    const { early, late } = await rowsInOneMillisecond()
    for (const [query, rows] of [
      [`createdTo=${encodeURIComponent('2029-12-31T24:00Z')}`, []],
      [`createdFrom=${encodeURIComponent('2029-12-31 24:00:00.000+00')}`, [late, early]],
      [`createdTo=${encodeURIComponent('2029-12-31T23:59:60Z')}`, []],
      [`createdTo=${encodeURIComponent('2030-01-01T00:00:60.0005Z')}`, [late, early]],
    ] as const) {
      expect([query, await listed(query)]).toEqual([query, [...rows]])
    }
    expect(await matched({ sentFrom: '2029-12-31T24:00:00Z' })).toBe(2)
    expect(await matched({ sentTo: '2029-12-31T23:59:60.0000+00:00' })).toBe(0)
  })

  test('a day no month has, or a time past 24:00 or a second 60, in a form sendAt takes, is a 400 saying what a bound is, not a 500', async () => {
    for (const bound of [
      '2030-02-30T00:00Z',
      '2030-01-01 24:00:01Z',
      '2030-01-01T24:00:00.5Z',
      '2030-01-01T24:01Z',
      '2030-01-01T12:00:61Z',
      // Past 24:00:00, which Postgres refuses (22008).
      '2030-01-01T23:59:60.5Z',
      // A colon with no minutes after it: sendAt's form (and the document's pattern) has none.
      '2030-01-01T00:00+01:',
    ]) {
      expect(await problem(`createdTo=${encodeURIComponent(bound)}`)).toEqual({
        status: 400,
        errors: [{ path: 'createdTo', message: `${TIME_BOUND} (given "${bound}")` }],
      })
    }
  })

  test("an offset's + left unencoded in the URL (read as a space) is named, with the fix", async () => {
    const r = await problem('sentTo=2030-01-01T00:00:00+01:00')
    expect(r.status).toBe(400)
    expect(r.errors[0]?.path).toBe('sentTo')
    expect(r.errors[0]?.message).toContain(
      "a + in a URL's query string arrives as a space: write it %2B (2030-01-01T00:00:00%2B01:00)",
    )
  })
})

describe('a window that ends where or before it starts', () => {
  const errors = (r: { body: unknown }) => (r.body as { errors?: unknown[] }).errors

  test('is a 400 naming its end in the list, not an empty page an operator takes for no rows', async () => {
    await enqueueSql(s.t.pool)
    const swapped = 'createdFrom=2030-01-02T00:00:00Z&createdTo=2030-01-01T00:00:00Z'
    // The same instant written two ways: [t, t) holds no row either.
    const empty = `sentFrom=${encodeURIComponent('2030-01-01T01:00:00+01:00')}&sentTo=2030-01-01T00:00:00Z`
    for (const [query, path, from] of [
      [swapped, 'createdTo', 'createdFrom'],
      [empty, 'sentTo', 'sentFrom'],
    ] as const) {
      const r = await send(s.app, 'GET', `/v1/outbox?${query}`, { token: s.tk })
      expect([query, r.status, errors(r)]).toEqual([
        query,
        400,
        [
          {
            path,
            message: `must be later than ${from}: the window [${from}, ${path}) holds no row (given "2030-01-01T00:00:00Z")`,
          },
        ],
      ])
    }
  })

  test('is a 400 in every form a bound takes: an offset ±hh, a second 60, 24:00', async () => {
    // Each pair is an empty window: its end before its start, or the same instant written two ways.
    for (const [from, to] of [
      ['2030-01-01T02:00+01', '2030-01-01T01:00+01'],
      ['2030-01-01 00:01Z', '2030-01-01T00:00:60Z'],
      ['2030-01-02T00:00:00Z', '2030-01-01T24:00Z'],
      ['2030-01-01T00:00:59.5+00', '2029-12-31T23:59:60-00'],
    ] as const) {
      const query = `createdFrom=${encodeURIComponent(from)}&createdTo=${encodeURIComponent(to)}`
      const r = await send(s.app, 'GET', `/v1/outbox?${query}`, { token: s.tk })
      expect([from, to, r.status, errors(r)]).toEqual([
        from,
        to,
        400,
        [
          {
            path: 'createdTo',
            message: `must be later than createdFrom: the window [createdFrom, createdTo) holds no row (given "${to}")`,
          },
        ],
      ])
    }
  })

  test('is a 400 naming it in the bulk actions’ filter, not a dry run matching 0', async () => {
    const r = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: {
        filter: { createdFrom: '2030-01-02T00:00:00Z', createdTo: '2030-01-01T00:00:00Z' },
        dryRun: true,
      },
    })
    expect([r.status, errors(r)]).toEqual([
      400,
      [
        {
          path: 'filter.createdTo',
          message:
            'must be later than createdFrom: the window [createdFrom, createdTo) holds no row',
        },
      ],
    ])
  })

  test('one a microsecond long, or past 9999 in UTC against one in year 0001, is a window: 200', async () => {
    await rowsInOneMillisecond()
    const from = encodeURIComponent('2030-01-01T00:00:00.000799Z')
    const to = encodeURIComponent('2030-01-01T00:00:00.0008Z')
    expect(await listed(`createdFrom=${from}&createdTo=${to}`)).toHaveLength(0)
    expect(
      await listed(`sentFrom=${from}&sentTo=${encodeURIComponent('2030-01-01T00:00:00.000801Z')}`),
    ).toHaveLength(1)
    const wide = `createdFrom=${encodeURIComponent('0001-01-01T00:00:00+01:00')}&createdTo=${encodeURIComponent('9999-12-31T23:59:59-05:00')}`
    expect(await listed(wide)).toHaveLength(2)
  })
})

describe('a bound Postgres has no instant for', () => {
  test('year 0000 is a 400 naming the filter, in the list and the bulk actions (not a 500)', async () => {
    const bound = '0000-06-01T00:00:00Z'
    const list = await send(s.app, 'GET', `/v1/outbox?createdFrom=${bound}`, { token: s.tk })
    const bulk = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { sentTo: bound }, dryRun: true },
    })
    const paths = (r: { body: unknown }) =>
      (r.body as { errors?: { path: string }[] }).errors?.map((e) => e.path)
    expect([list.status, paths(list)]).toEqual([400, ['createdFrom']])
    expect([bulk.status, paths(bulk)]).toEqual([400, ['filter.sentTo']])
  })

  test('an offset past ±15:59 (22009 in Postgres) is a 400 naming the filter, in the list and the bulk actions (not a 500)', async () => {
    const list = await send(
      s.app,
      'GET',
      `/v1/outbox?createdFrom=${encodeURIComponent('2030-01-01T00:00:00+16:00')}`,
      { token: s.tk },
    )
    const bulk = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { sentTo: '2030-01-01T00:00:00-23:59' }, dryRun: true },
    })
    const issues = (r: { body: unknown }) =>
      (r.body as { errors?: { path: string; message: string }[] }).errors
    const message = 'its UTC offset must be from -15:59 to +15:59 (Postgres has none beyond)'
    // The list quotes the bound it refused; the bulk filter's path says which field of the body.
    const quoted = `${message} (given "2030-01-01T00:00:00+16:00")`
    expect([list.status, issues(list)]).toEqual([400, [{ path: 'createdFrom', message: quoted }]])
    expect([bulk.status, issues(bulk)]).toEqual([400, [{ path: 'filter.sentTo', message }]])
    // The widest offsets Postgres takes are bounds.
    await enqueueSql(s.t.pool)
    const widest = `createdFrom=${encodeURIComponent('2000-01-01T00:00:00+15:59')}&createdTo=${encodeURIComponent('9999-01-01T00:00:00-15:59')}`
    expect(await listed(widest)).toHaveLength(1)
  })

  test('year 0001 with an offset before UTC (1 BC in UTC) and past 9999 in UTC are instants: 200', async () => {
    await enqueueSql(s.t.pool)
    expect(
      await listed(`createdFrom=${encodeURIComponent('0001-01-01T00:00:00+01:00')}`),
    ).toHaveLength(1)
    expect(
      await listed(`createdTo=${encodeURIComponent('9999-12-31T23:59:59-05:00')}`),
    ).toHaveLength(1)
  })
})
