// A database URL's percent-encoding: a % with no two hex digits, or escapes that are no UTF-8, is refused at start naming the part and where, never its text; a well-formed one is taken.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// Generated per run: a leak is unmistakable.
const password = `pw${randomBytes(6).toString('hex')}`

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig({ MAIL_TRANSPORT: 'file', ...env })
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}

const malformed = (variable: string, part: string, at: number) =>
  `${variable}: its ${part} holds a % not followed by two hexadecimal digits, at character ${at} of the ${part}: the driver would use it as written (libpq refuses it); write a % itself as %25, and @ : / ? # as %40 %3A %2F %3F %23`

describe('a database URL whose percent-encoding is malformed', () => {
  test('in the password (%zz, %4, a lone %): refused naming the variable and where, never the password', () => {
    // pg-connection-string kept each as written ("p%zz" sent as the password), and a malformed %
    // anywhere made it re-encode the whole URL: a password's %2F then reached the server as "%2F".
    expect(
      [
        `postgres://u:${password}%zz@db/app`,
        `postgres://u:${password}%4@db/app`,
        `postgres://u:%${password}@db/app`,
      ].map((url) => problems({ DATABASE_URL: url })),
    ).toEqual([
      [malformed('DATABASE_URL', 'password', password.length + 1)],
      [malformed('DATABASE_URL', 'password', password.length + 1)],
      [malformed('DATABASE_URL', 'password', 1)],
    ])
  })

  test('where it is counts characters as the other lines do: an emoji before it is one', () => {
    // As invisible-character.ts counts them (an emoji is one, though two UTF-16 units).
    expect(problems({ DATABASE_URL: `postgres://u:\u{1F600}${password}%zz@db/app` })).toEqual([
      malformed('DATABASE_URL', 'password', password.length + 2),
    ])
    expect(problems({ DATABASE_URL: 'postgres://u:\u{1F600}%FF@db/app' })).toEqual([
      "DATABASE_URL: its password's percent-encoding at character 2 of the password decodes to no UTF-8 text (the driver cannot read it): percent-encode the password's UTF-8 bytes, as encodeURIComponent does",
    ])
  })

  test('in LISTEN_DATABASE_URL and each URL of MAILER_DATABASES, named by where it is set', () => {
    expect(
      problems({
        DATABASE_URL: 'postgres://u@db/app',
        LISTEN_DATABASE_URL: `postgres://u:${password}%g1@db/app`,
      }),
    ).toEqual([malformed('LISTEN_DATABASE_URL', 'password', password.length + 1)])
    expect(
      problems({
        MAILER_DATABASES: JSON.stringify([
          { name: 'a', url: `postgres://u:%${password}@db/a` },
          { name: 'b', url: 'postgres://u@db/b', listenUrl: `postgres://u:a%2${password}@db/b` },
        ]),
      }),
    ).toEqual([
      malformed('MAILER_DATABASES[0].url', 'password', 1),
      malformed('MAILER_DATABASES[1].listenUrl', 'password', 2),
    ])
  })

  test('in the user name, the database name or a parameter: named by its part, as each changes what the driver reads', () => {
    expect(
      [
        'postgres://u%zz:p@db/app',
        'postgres://u@db/app%zz',
        'postgres://u@db/app?application_name=50%25&options=%',
      ].map((url) => problems({ DATABASE_URL: url })),
    ).toEqual([
      [malformed('DATABASE_URL', 'user name', 2)],
      [malformed('DATABASE_URL', 'database name', 4)],
      [malformed('DATABASE_URL', 'options parameter', 1)],
    ])
  })

  test('escapes that decode to no UTF-8 text (%C3%28, %FF) are named as such, not as a bad host or port', () => {
    // The driver's decodeURIComponent throws on them at every connection.
    const noUtf8 = `DATABASE_URL: its password's percent-encoding at character ${password.length + 1} of the password decodes to no UTF-8 text (the driver cannot read it): percent-encode the password's UTF-8 bytes, as encodeURIComponent does`
    expect(
      ['%C3%28', '%FF'].map((bytes) =>
        problems({ DATABASE_URL: `postgres://u:${password}${bytes}@db/app` }),
      ),
    ).toEqual([[noUtf8], [noUtf8]])
  })

  test('check-config names it too, and prints the password nowhere', async () => {
    const report = await checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        API_JWT_SECRET: randomBytes(32).toString('base64url'),
        DATABASE_URL: `postgres://u:${password}%zz@db/app`,
      },
      { connect: false, role: 'api' },
    )
    expect(report.problems).toEqual([malformed('DATABASE_URL', 'password', password.length + 1)])
    expect(JSON.stringify(report)).not.toContain(password)
  })

  test('well-formed escapes are taken: %25 for a %, reserved characters, UTF-8 letters, either case', () => {
    for (const url of [
      `postgres://u:${password}%25zz@db/app`,
      `postgres://u:${encodeURIComponent(`${password}@:/?#%é`)}@db/app`,
      `postgres://u:${password}%c3%a9@db/app?application_name=a%20b`,
      'postgres://u%40corp:p@db/app%2Dx',
    ]) {
      expect([url, problems({ DATABASE_URL: url })]).toEqual([url, []])
    }
  })
})
