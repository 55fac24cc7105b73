// The suite's own rules, read from its sources: no skipped or focused tests, every async matcher awaited, every pg pool a test opens listened to.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { Glob } from 'bun'
import ts from 'typescript'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')
const FILES = [...new Glob('test/**/*.ts').scanSync(ROOT)].sort()

// Parsed once for every rule below.
const SOURCES = Promise.all(
  FILES.map(async (file) =>
    ts.createSourceFile(
      file,
      await Bun.file(resolve(ROOT, file)).text(),
      ts.ScriptTarget.Latest,
      true,
    ),
  ),
)

/** Every node of the suite, and where it is, as file:line. */
async function eachSource(visit: (node: ts.Node, at: () => string) => void) {
  for (const source of await SOURCES) {
    const walk = (node: ts.Node) => {
      visit(
        node,
        () =>
          `${source.fileName}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`,
      )
      ts.forEachChild(node, walk)
    }
    walk(source)
  }
}

test('the rules read the whole suite', () => {
  // A glob that matched nothing would pass every rule below.
  expect(FILES.length).toBeGreaterThan(100)
  expect(FILES).toContain('test/unit/test-rules.test.ts')
})

test('no test or describe is skipped, left to do or focused', async () => {
  const found: string[] = []
  await eachSource((node, at) => {
    if (
      ts.isPropertyAccessExpression(node) &&
      /^(test|it|describe)$/.test(node.expression.getText()) &&
      /^(skip|todo|only|skipIf|if|todoIf|failing)$/.test(node.name.text)
    ) {
      found.push(`${at()} ${node.getText()}`)
    }
  })
  expect(found).toEqual([])
})

// An expect(promise).rejects/.resolves chain not awaited is checked after the test may have
// ended: its failure is reported late, or against another test, or not at all.
test('every .resolves or .rejects matcher is awaited or returned', async () => {
  const found: string[] = []
  await eachSource((node, at) => {
    if (!ts.isCallExpression(node) || node.expression.getText() !== 'expect') return
    let top: ts.Node = node
    while (
      ts.isPropertyAccessExpression(top.parent) ||
      (ts.isCallExpression(top.parent) && top.parent.expression === top)
    ) {
      top = top.parent
    }
    if (!/^expect\([\s\S]*\)\s*\.(resolves|rejects)\b/.test(top.getText())) return
    const p = top.parent
    const used = ts.isAwaitExpression(p) || ts.isReturnStatement(p) || ts.isArrowFunction(p)
    if (!used) found.push(`${at()} ${top.getText().slice(0, 80)}`)
  })
  expect(found).toEqual([])
})

// The preload's setDefaultTimeout reaches only a run's first file (bun#43787): any other file is
// held to bun's 5 s, which four RSA keys made in a beforeAll exceeded on a loaded CI machine. The
// fault scenarios' files too: CI and `bun run test:faults` pass --timeout, a run by hand need not.
test('every test file sets its own default timeout at its top level', async () => {
  const missing: string[] = []
  for (const source of await SOURCES) {
    if (!/\.(test|fault)\.ts$/.test(source.fileName)) continue
    const sets = source.statements.some(
      (s) =>
        ts.isExpressionStatement(s) &&
        ts.isCallExpression(s.expression) &&
        s.expression.expression.getText() === 'setDefaultTimeout',
    )
    if (!sets) missing.push(source.fileName)
  }
  expect(missing).toEqual([])
})

// A pg pool without an 'error' listener throws out of its socket's handler when an idle connection
// is ended under it: a drop `with (force)` or a terminate (57P01), and pg-pool's end() resolves
// before the server has read its goodbye, so a drop right after an end meets it too (round 51's CI:
// `1 error`, heartbeat-plan's pool). testPool listens, and ends once the server closed them.
const OWN_POOLS: Record<string, string> = {
  'test/support/test-pool.ts': 'the definition',
  'test/support/database-away.ts': 'its port refuses every connect: no connection to end',
  'test/faults/harness.ts':
    'listens (a stopped server is the scenario); the fault suite ends it before its drop',
  'test/api/health.test.ts':
    'listens; through a proxy whose outage cuts it: its close is the proxy’s, no drop meets it',
  'test/integration/readiness-unreachable.test.ts':
    'listens; through a proxy that refuses or stalls its connections, or on a database closed to them',
}

test('every pg pool a test opens is testPool’s (listened to, ended once closed), or listed with why', async () => {
  const found: string[] = []
  await eachSource((node, at) => {
    if (!ts.isNewExpression(node) || !/^(pg\.)?Pool$/.test(node.expression.getText())) return
    if (!(node.getSourceFile().fileName in OWN_POOLS)) found.push(`${at()} ${node.getText()}`)
  })
  expect(found).toEqual([])
})
