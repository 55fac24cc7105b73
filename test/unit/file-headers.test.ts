// The repository's rule that every source file opens with one line saying what it is responsible for, read from the files.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { Glob } from 'bun'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')

/** Each kind of source, where it lives, and how its comment line opens (a shebang may come first). */
const KINDS = [
  { glob: '{src,test,bench}/**/*.ts', comment: '// ' },
  { glob: '{sql,deploy}/**/*.sql', comment: '-- ' },
  { glob: '{deploy,.ci}/**/*', comment: '# ', shell: true },
] as const

/**
 * The first line of substance: a comment of at least a few words, not a directive (biome-ignore,
 * @ts-…) nor an empty comment. A shell script's shebang comes before it.
 */
function headerProblem(text: string, comment: string, shell: boolean): string | null {
  const lines = text.split('\n')
  const first = shell && lines[0]?.startsWith('#!') ? lines[1] : lines[0]
  if (first === undefined || !first.startsWith(comment)) return 'opens with no comment line'
  const words = first.slice(comment.length).trim()
  if (/^(biome-ignore|@ts-|eslint|prettier)/.test(words)) return 'opens with a directive'
  if (words.split(/\s+/).length < 4) return `opens with too short a line: ${first}`
  return null
}

async function filesOf(glob: string): Promise<string[]> {
  const tracked = new Set(
    (await Bun.$`git ls-files`.cwd(ROOT).quiet().text()).split('\n').filter(Boolean),
  )
  return [...new Glob(glob).scanSync({ cwd: ROOT, dot: true })].filter((f) => tracked.has(f)).sort()
}

test('every source file opens with one line saying what it is responsible for', async () => {
  const problems: string[] = []
  let read = 0
  for (const kind of KINDS) {
    for (const file of await filesOf(kind.glob)) {
      if ('shell' in kind && !/(^|\/)[^.]+$|\.sh$/.test(file)) continue
      read++
      const text = await Bun.file(resolve(ROOT, file)).text()
      const problem = headerProblem(text, kind.comment, 'shell' in kind)
      if (problem) problems.push(`${file}: ${problem}`)
    }
  }
  expect(problems).toEqual([])
  // A glob that matched nothing would pass the rule.
  expect(read).toBeGreaterThan(600)
})

test('the rule sees a file without its header', () => {
  expect(headerProblem("import { x } from './x.ts'\n", '// ', false)).toBe(
    'opens with no comment line',
  )
  expect(headerProblem('// biome-ignore lint: why\n', '// ', false)).toBe('opens with a directive')
  expect(
    headerProblem('#!/usr/bin/env bash\n# Runs the suite on every engine.\n', '# ', true),
  ).toBe(null)
})
