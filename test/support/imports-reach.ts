// Whether a file's static imports, followed through relative paths, reach a given module.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

const transpiler = new Bun.Transpiler({ loader: 'ts' })

/** True when `file` or a module it imports (transitively, relative specifiers only) is `target`. */
export function importsReach(file: string, target: string): boolean {
  const seen = new Set<string>()
  const stack = [resolve(file)]
  while (stack.length > 0) {
    const at = stack.pop() as string
    if (at === target) return true
    // Only TypeScript is scanned: a .sql, .json or .md import is text and imports nothing.
    if (seen.has(at) || !at.endsWith('.ts') || !existsSync(at)) continue
    seen.add(at)
    for (const { path } of transpiler.scanImports(readFileSync(at, 'utf8'))) {
      if (path.startsWith('.')) stack.push(resolve(dirname(at), path))
    }
  }
  return false
}
