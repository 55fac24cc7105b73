// The command line is checked whole before anything runs: unknown commands, flags and values are refused.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { parseArgs } from '../../src/cli-args.ts'
import { clientIdProblem, tenantProblem } from '../../src/config/entra-ids.ts'
import {
  parseDeadlineSeconds,
  parseSeconds,
  parseStatusTimeoutSeconds,
} from '../../src/flag-values.ts'
import { runBinary } from '../support/binary.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const refusal = (argv: string[]) => {
  try {
    parseArgs(argv)
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message }
  }
  return null
}

describe('parseArgs', () => {
  test('--help or -h after any command asks for its usage, whatever else is there', () => {
    for (const argv of [
      ['migrate', '--help'],
      ['serve', '-h'],
      ['serve', '--role', 'worker', '--help'],
      ['send-test', '--help', '--to'],
      ['check-config', '--bogus', '-h'],
    ]) {
      const p = parseArgs(argv)
      expect(p.kind).toBe('help')
      expect(p.kind === 'help' && p.text).toContain(`outbox-mailer ${argv[0]}`)
      expect(p.kind === 'help' && p.exit).toBe(0)
    }
    expect(parseArgs(['--help'])).toMatchObject({ kind: 'help', exit: 0 })
    expect(parseArgs(['help', 'migrate'])).toMatchObject({ kind: 'help', exit: 0 })
    expect(parseArgs([])).toMatchObject({ kind: 'help', exit: 2 })
  })

  test('flags are read in both forms and only where they belong', () => {
    expect(parseArgs(['serve', '--role', 'worker'])).toEqual({
      kind: 'run',
      command: 'serve',
      flags: new Map([['--role', 'worker']]),
    })
    expect(parseArgs(['serve', '--role=api'])).toMatchObject({
      flags: new Map([['--role', 'api']]),
    })
    expect(parseArgs(['check-config', '--connect', '--role', 'worker'])).toMatchObject({
      flags: new Map([
        ['--connect', ''],
        ['--role', 'worker'],
      ]),
    })
    expect(parseArgs(['send-test', '--to', 'a@b.c', '--from=x@y.z'])).toMatchObject({
      flags: new Map([
        ['--to', 'a@b.c'],
        ['--from', 'x@y.z'],
      ]),
    })
    expect(parseArgs(['--version'])).toEqual({ kind: 'version' })
  })

  test('a negative number after a flag is its value, refused as a number, not taken for an option', () => {
    const parsed = parseArgs(['status', '--max-pending-age', '-5'])
    expect(parsed).toMatchObject({ flags: new Map([['--max-pending-age', '-5']]) })
    const seconds = (parsed as { flags: ReadonlyMap<string, string> }).flags.get(
      '--max-pending-age',
    )
    expect(() => parseSeconds('--max-pending-age', seconds, 600)).toThrow(
      '--max-pending-age must be a positive number of seconds (got "-5")',
    )
    expect(parseArgs(['status', '--timeout', '-0.5'])).toMatchObject({
      flags: new Map([['--timeout', '-0.5']]),
    })
  })

  test("status' seconds are written in decimal, without a unit: hex and exponents are refused, not read as Number() reads them, and a unit is named", () => {
    // review36: `status --max-send-gap 0x12c` ran with 300 and `1e3` with 1000, where
    // --deadline (parseDeadlineSeconds) and every *_SECONDS variable refuse them; `5m` was refused
    // without saying what the flag takes instead.
    const said = (value: string) => {
      try {
        return parseSeconds('--max-send-gap', value, 300)
      } catch (e) {
        return (e as Error).message
      }
    }
    expect(['0x12c', '1e3', '5m', '90 s', '300', ' 300 ', '0.5'].map(said)).toEqual([
      '--max-send-gap must be a positive number of seconds (got "0x12c")',
      '--max-send-gap must be a positive number of seconds (got "1e3")',
      '--max-send-gap must be a positive number of seconds, without a unit (got "5m": that is 300)',
      '--max-send-gap must be a positive number of seconds, without a unit (got "90 s": that is 90)',
      300,
      300,
      0.5,
    ])
  })

  test('a plain decimal without its leading zero is taken: `status --timeout .5` and `--max-send-gap .5` mean 0.5, as `0.5` does', () => {
    // review57: `.5` was refused as "must be a positive number of seconds" while `0.5` ran.
    const said = (read: () => number | undefined) => {
      try {
        return read()
      } catch (e) {
        return (e as Error).message
      }
    }
    expect(
      [
        () => parseStatusTimeoutSeconds('.5'),
        () => parseSeconds('--max-send-gap', '.5', 300),
        () => parseSeconds('--max-pending-age', ' .25 ', 600),
        () => parseSeconds('--max-send-gap', '5.', 300),
        () => parseDeadlineSeconds('.5'),
      ].map(said),
    ).toEqual([0.5, 0.5, 0.25, 5, 0.5])
    // Still refused: no digit, a sign, two points, zero, and a unit (".5m" is 30 whole seconds).
    expect(
      ['.', '-.5', '.5.5', '..5', '.0', '.5m'].map((v) =>
        said(() => parseSeconds('--timeout', v, 5)),
      ),
    ).toEqual([
      '--timeout must be a positive number of seconds (got ".")',
      '--timeout must be a positive number of seconds (got "-.5")',
      '--timeout must be a positive number of seconds (got ".5.5")',
      '--timeout must be a positive number of seconds (got "..5")',
      '--timeout must be a positive number of seconds (got ".0")',
      '--timeout must be a positive number of seconds, without a unit (got ".5m": that is 30)',
    ])
  })

  test('seconds are positive: 0 is refused (a --timeout of 0 would bound nothing), a fraction taken', () => {
    expect(() => parseSeconds('--timeout', '0', 5)).toThrow(
      '--timeout must be a positive number of seconds (got "0")',
    )
    expect([parseSeconds('--timeout', '0.5', 5), parseSeconds('--timeout', undefined, 5)]).toEqual([
      0.5, 5,
    ])
  })

  test('status --timeout is at most a day (86400): a longer one bounded the connection and each read by 1 ms, saying the database was unreachable', () => {
    // Past 2^31 - 1 ms (about 24.8 days) the timers fired at once: `status --timeout 3000000` on a
    // database that answers reported it unreachable (exit 4) with a TimeoutOverflowWarning.
    expect([parseStatusTimeoutSeconds('86400'), parseStatusTimeoutSeconds(undefined)]).toEqual([
      86400, 5,
    ])
    for (const value of ['86400.5', '2147484', '1000000000']) {
      expect(() => parseStatusTimeoutSeconds(value)).toThrow(
        `--timeout is at most 86400 seconds (got "${value}")`,
      )
    }
  })

  test('migrate --deadline takes seconds or 0 (none), over MIGRATE_DEADLINE_SECONDS; anything else is refused', () => {
    expect(parseArgs(['migrate', '--deadline', '0'])).toMatchObject({
      flags: new Map([['--deadline', '0']]),
    })
    expect([
      parseDeadlineSeconds('0'),
      parseDeadlineSeconds('600'),
      parseDeadlineSeconds('1.5'),
      parseDeadlineSeconds(undefined),
    ]).toEqual([0, 600, 1.5, undefined])
    for (const value of ['-1', '4m', ' ', '1e3', '0x10', '1_000']) {
      expect(() => parseDeadlineSeconds(value)).toThrow(
        `--deadline must be a number of seconds, 0 for none (got "${value}")`,
      )
    }
  })

  test('migrate --deadline is at most a day (86400, as MIGRATE_DEADLINE_SECONDS): a longer one was taken as due at once', () => {
    // Past 2^31 - 1 ms (about 24.8 days) the timer fired at once: `--deadline 3000000` stopped an
    // up-to-date database with "migrate's deadline of 3000000 s … passed while checking its session".
    expect(parseDeadlineSeconds('86400')).toBe(86400)
    for (const value of ['86400.5', '3000000']) {
      expect(() => parseDeadlineSeconds(value)).toThrow(
        `--deadline is at most 86400 seconds (a day); 0 for none (got "${value}")`,
      )
    }
    expect(() => parseDeadlineSeconds('Infinity')).toThrow(
      '--deadline must be a number of seconds, 0 for none (got "Infinity")',
    )
  })

  test.each([
    [['bogus'], 'unknown command "bogus"'],
    [['--versio'], 'unknown option "--versio"'],
    [['--version', 'now'], '--version takes no arguments'],
    [['help', 'bogus'], 'help takes at most one command name'],
    [['migrate', '--dry-run'], 'migrate: unknown option "--dry-run"'],
    [['migrate', 'now'], 'migrate: unexpected argument "now"'],
    [['serve', 'extra-arg'], 'serve: unexpected argument "extra-arg"'],
    [['serve', '--role'], 'serve: --role needs a value'],
    [['serve', '--role='], 'serve: --role needs a value'],
    [['check-config', '--role', '--connect'], 'check-config: --role needs a value'],
    [['check-config', '--connect=yes'], 'check-config: --connect takes no value'],
    [['serve', '--role', 'api', '--role', 'worker'], 'serve: --role is given twice'],
    [['serve', '--to', 'a@b.c'], 'serve: unknown option "--to"'],
    [['send-test', '--from'], 'send-test: --from needs a value'],
    // Said before the environment is read: not after four Graph variables are named first.
    [['send-test'], 'send-test: --to ADDRESS is required (the recipient)'],
    [['send-test', '--from', 'a@b.c'], 'send-test: --to ADDRESS is required (the recipient)'],
  ])('%j is a usage error: %s', (argv, message) => {
    const r = refusal(argv)
    expect(r?.code).toBe('config_invalid')
    expect(r?.message).toContain(message)
  })
})

test('--help names every cause of exit 3, an edited migration included, as the README does', () => {
  for (const argv of [['--help'], ['status', '--help']]) {
    const p = parseArgs(argv)
    expect(p.kind === 'help' && p.text).toMatch(/3 [^\n]*missing[\s\S]*edited/)
  }
})

test("--help and each command's that lists them say the forms GRAPH_TENANT_ID and GRAPH_CLIENT_ID take: the start refuses any other", () => {
  const lines = (argv: string[]) => {
    const p = parseArgs(argv)
    // A command's help wraps a meaning under its first line's text (indented past the names).
    return (p.kind === 'help' ? p.text : '')
      .replace(/\n {12,}/g, ' ')
      .split('\n')
      .filter((l) => /^\s+GRAPH_(TENANT|CLIENT)_ID\s/.test(l))
      .map((l) => l.trim().replace(/\s+/g, ' '))
  }
  for (const argv of [
    ['--help'],
    ['serve', '--help'],
    ['send-test', '--help'],
    ['check-config', '--help'],
  ]) {
    expect({ argv, lines: lines(argv) }).toEqual({
      argv,
      lines: [
        'GRAPH_TENANT_ID Directory (tenant) ID: a GUID (8-4-4-4-12 hexadecimal digits), or a domain verified in the tenant (contoso.onmicrosoft.com); not common, organizations or consumers (default: -)',
        'GRAPH_CLIENT_ID Application (client) ID of the app registration: a GUID (8-4-4-4-12 hexadecimal digits) (default: -)',
      ],
    })
  }
  // The forms it says are those taken, the words it refuses refused.
  const guid = '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b'
  expect({
    taken: [tenantProblem(guid), tenantProblem('contoso.onmicrosoft.com'), clientIdProblem(guid)],
    refused: ['common', 'organizations', 'consumers'].map((w) => tenantProblem(w) !== null),
  }).toEqual({ taken: [null, null, null], refused: [true, true, true] })
})

test('--help and status --help name each cause of status exit 5, as the README does', () => {
  for (const argv of [['--help'], ['status', '--help']]) {
    const help = parseArgs(argv)
    const text = (help.kind === 'help' ? help.text : '').replace(/\s+/g, ' ')
    for (const cause of [
      'older than --max-pending-age',
      'no row sent for longer than --max-send-gap',
      // The gap's outages: a throttle's pause, Graph out of reach, and Entra giving no token (the
      // README's Status: token_timeout, token_slow, …), which --max-send-gap's own line names too.
      'a throttled mailbox',
      'Graph out of reach',
      'Entra giving no token',
      // Each a 5 whatever the rows' age: a fix is owed, nothing ends it by itself.
      'a sender mailbox Graph refuses while rows that send from it are pending',
      "Entra refuses a live worker's Graph credential while rows are pending",
      'claims no worker took back',
      'rows due and no live worker',
      'the database takes no writes',
      'a read that failed',
    ]) {
      expect({ argv, cause, listed: text.includes(cause) }).toEqual({ argv, cause, listed: true })
    }
  }
  const status = parseArgs(['status', '--help'])
  const gapFlag = (status.kind === 'help' ? status.text : '')
    .replace(/\s+/g, ' ')
    .match(/--max-send-gap SECONDS (.*?) --timeout/)?.[1]
  expect(gapFlag).toContain('Entra giving no token')
})

test("every command's --help says what it does, names each of its flags, the variables it reads, its exit codes and an example", () => {
  const expected: Record<string, { flags: string[]; env: string[]; exits: number[] }> = {
    serve: { flags: ['--role'], env: ['DATABASE_URL', 'MAIL_FROM', 'PORT'], exits: [0, 1, 2, 3] },
    migrate: {
      flags: ['--deadline'],
      env: ['DATABASE_URL', 'LISTEN_DATABASE_URL', 'MIGRATE_DEADLINE_SECONDS'],
      exits: [0, 1, 2, 3],
    },
    'send-test': {
      flags: ['--to', '--from'],
      env: ['MAIL_TRANSPORT', 'MAIL_FROM', 'GRAPH_TENANT_ID'],
      exits: [0, 1, 2],
    },
    'check-config': {
      flags: ['--connect', '--role'],
      env: ['DATABASE_URL', 'MAIL_FROM'],
      exits: [0, 1, 2],
    },
    status: {
      flags: ['--json', '--max-pending-age', '--max-send-gap', '--timeout'],
      env: ['DATABASE_URL', 'MAILER_DATABASES'],
      exits: [0, 1, 2, 3, 4, 5, 6],
    },
  }
  for (const [command, want] of Object.entries(expected)) {
    const p = parseArgs([command, '--help'])
    const text = p.kind === 'help' ? p.text : ''
    const exitLines = text.split('\n').filter((l) => /^ {2}\d /.test(l))
    expect({
      command,
      usage: text.startsWith(`usage: outbox-mailer ${command}`),
      flags: want.flags.filter((f) => text.includes(`\n  ${f}`)),
      env: want.env.filter((v) => text.includes(`\n  ${v} `)),
      exits: exitLines.map((l) => Number(l.trim().split(' ')[0])),
      example: text.includes(`\nExample:\n  outbox-mailer ${command}`),
    }).toEqual({
      command,
      usage: true,
      flags: want.flags,
      env: want.env,
      exits: want.exits,
      example: true,
    })
  }
})

test("a command's --help lists the variables the deploy guide sets for it, and each one a variable it lists needs beside it", () => {
  // Step 4 stores the certificate and key as GRAPH_CERTIFICATE and GRAPH_PRIVATE_KEY (their _FILE
  // forms are the alternative); API_JWKS_URL starts nothing without its issuer and audience; the
  // file transport writes into MAIL_FILE_DIR; status judges leases by LEASE_SECONDS (a pause it
  // tells from a pacing turn by the rate the workers noted, not its own).
  const expected: Record<string, string[]> = {
    serve: [
      'GRAPH_CERTIFICATE',
      'GRAPH_PRIVATE_KEY',
      'API_JWT_ISSUER',
      'API_JWT_AUDIENCE',
      'MAIL_FILE_DIR',
    ],
    'check-config': [
      'GRAPH_CERTIFICATE',
      'GRAPH_PRIVATE_KEY',
      'API_JWT_ISSUER',
      'API_JWT_AUDIENCE',
      'MAIL_FILE_DIR',
    ],
    'send-test': ['GRAPH_CERTIFICATE', 'GRAPH_PRIVATE_KEY'],
    status: ['LEASE_SECONDS'],
  }
  const missing = Object.entries(expected).map(([command, vars]) => {
    const p = parseArgs([command, '--help'])
    const text = p.kind === 'help' ? p.text : ''
    return [command, vars.filter((v) => !text.includes(`\n  ${v} `))]
  })
  expect(missing).toEqual(Object.keys(expected).map((command) => [command, []]))
})

test('a flag value refused names its command and shows its usage, as every other usage error does', async () => {
  const main = resolve(import.meta.dir, '../../src/main.ts')
  const said = await Promise.all(
    [
      ['serve', '--role', 'nope'],
      ['status', '--timeout', '0'],
      ['migrate', '--deadline', 'soon'],
    ].map(async (args) => {
      // No DATABASE_URL: a configuration read first would report that instead.
      const r = await runBinary(process.execPath, [main, ...args], { PATH: process.env.PATH ?? '' })
      return [r.code, r.stderr.trim()]
    }),
  )
  expect(said).toEqual([
    [
      2,
      'serve: --role must be all, worker or api (got "nope")\nusage: outbox-mailer serve [--role all|worker|api]',
    ],
    [
      2,
      'status: --timeout must be a positive number of seconds (got "0")\nusage: outbox-mailer status [--json] [--max-pending-age SECONDS] [--max-send-gap SECONDS] [--timeout SECONDS]',
    ],
    [
      2,
      'migrate: --deadline must be a number of seconds, 0 for none (got "soon")\nusage: outbox-mailer migrate [--deadline SECONDS]',
    ],
  ])
})

test('serve --help names every signal that stops it, as README does (SIGHUP: the terminal or SSH session closed)', () => {
  const help = parseArgs(['serve', '--help'])
  const text = help.kind === 'help' ? help.text.replace(/\s+/g, ' ') : ''
  expect(['SIGTERM', 'SIGINT', 'SIGHUP'].filter((s) => !text.includes(s))).toEqual([])
})
