// MAILER_DATABASES that is not JSON, or not a list of entries, is named where it breaks, never showing a password.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** The one MAILER_DATABASES problem loadConfig names for `value`. */
function jsonProblem(value: string): string {
  try {
    loadConfig({ MAIL_TRANSPORT: 'file', MAILER_DATABASES: value })
  } catch (e) {
    const problems = (e as { details: { problems: string[] } }).details.problems
    return problems.find((p) => p.startsWith('MAILER_DATABASES')) ?? problems.join('\n')
  }
  return 'loaded'
}

// Generated here: no password-like literal in the repository.
const password = crypto.randomUUID()

test('a single-quoted name (shell quoting) is named by line and column, with an excerpt and the shape expected', () => {
  const value = `[{"name":"a","url":"postgres://app:${password}@db/a"},\n {'name':"b","url":"postgres://app:${password}@db/b"}]`
  const problem = jsonProblem(value)
  expect(problem).toContain('line 2, column 3')
  expect(problem).toContain('a property name in double quotes')
  expect(problem).toContain(`'name'`)
  expect(problem).toContain('[{"name":"main","url":"postgres://…"')
  expect(problem).not.toContain(password)
})

test('a password is masked in the excerpt even where the error falls inside its URL', () => {
  // A raw line break inside the string: JSON wants \n.
  const problem = jsonProblem(`[{"name":"a","url":"postgres://app:${password}@db/a\n"}]`)
  expect(problem).toContain('line 1, column')
  expect(problem).toContain('***@db/a')
  expect(problem).not.toContain(password)
  expect(problem).not.toContain(password.slice(0, 8))
  const short = password.slice(0, 12)
  const keyword = jsonProblem(`[{"name":"a","url":"postgres://db/a?password=${short}"},]`)
  expect(keyword).toContain('password=***')
  expect(keyword).not.toContain(short)
  // A '/' or a raw '"' in a password: the JSON breaks inside it, none of it is quoted.
  const [head, tail] = [password.slice(0, 8), password.slice(-8)]
  const quoted = jsonProblem(`[{"name":"a","url":"postgres://app:${head}/"${tail}@db/a"}]`)
  expect(quoted).toContain('line 1, column')
  expect([quoted.includes(head), quoted.includes(tail)]).toEqual([false, false])
})

test('a trailing comma and a bare URL are each named with what JSON wants there', () => {
  expect(jsonProblem('[{"name":"a","url":"postgres://db/a"},]')).toMatch(
    /line 1, column 39: .*a value/,
  )
  const bare = jsonProblem(`postgres://app:${password}@db/a`)
  expect(bare).toContain('line 1, column 1')
  expect(bare).not.toContain(password.slice(0, 8))
})

test("a raw '\"' then ',', '}' or ']' inside a password, or a raw line break, shows none of it", () => {
  const [head, tail] = [password.slice(0, 8), password.slice(-8)]
  const shown = (value: string) => {
    const problem = jsonProblem(value)
    return [problem.includes('line 1'), problem.includes(head), problem.includes(tail)]
  }
  for (const end of ['",', '"}', '"]']) {
    // The JSON string ends inside the password, and breaks right after that end.
    expect(shown(`[{"name":"a","url":"postgres://app:${head}${end}${tail}@db/a"}]`)).toEqual([
      true,
      false,
      false,
    ])
    expect(shown(`[{"name":"a","url":"postgres://db/a?password=${head}${end}${tail}"}]`)).toEqual([
      true,
      false,
      false,
    ])
    // Not a key MAILER_DATABASES takes, but one a user may write all the same.
    expect(shown(`[{"name":"a","password":"${head}${end}${tail}"}]`)).toEqual([true, false, false])
  }
  // A raw line break: the JSON breaks inside the password, its rest on the next line.
  const broken = jsonProblem(`[{"name":"a","url":"postgres://app:${head}\n${tail}@db/a"}]`)
  expect([broken.includes(head), broken.includes(tail)]).toEqual([false, false])
  const keyword = jsonProblem(`[{"name":"a","url":"postgres://db/a?password=${head}\n${tail}"}]`)
  expect([keyword.includes(head), keyword.includes(tail)]).toEqual([false, false])
  const key = jsonProblem(`[{"name":"a","password":"${head}\n${tail}"}]`)
  expect([key.includes(head), key.includes(tail)]).toEqual([false, false])
})

/** Every MAILER_DATABASES problem loadConfig names for `value`. */
function entryProblems(value: string): string[] {
  try {
    loadConfig({ MAIL_TRANSPORT: 'file', MAILER_DATABASES: value })
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
  return []
}

test("an entry's problem names the entry and its key as a reader writes them, says what to write, and quotes a bad name (never a URL)", () => {
  const url = `postgres://app:${password}@db/a`
  expect(
    entryProblems(
      JSON.stringify([
        { name: 'Acme', url },
        { url },
        { name: 'c', url, listenurl: url },
        { name: url, url },
      ]),
    ),
  ).toEqual([
    'MAILER_DATABASES[0].name: "Acme" must be 1-40 of a-z 0-9 _ - (lower case, no blank)',
    'MAILER_DATABASES[1].name: is required (each entry has a "name" and a "url", and may have a "listenUrl")',
    'MAILER_DATABASES[2]: unknown key "listenurl" (each entry has a "name" and a "url", and may have a "listenUrl")',
    'MAILER_DATABASES[3].name: must be 1-40 of a-z 0-9 _ -',
  ])
})
