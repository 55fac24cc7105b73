// Bench tools that start systems' processes run them in the release image's environment (bench/image-env.ts), as the suite does.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const BENCH = join(import.meta.dir, '../../bench')

/**
 * The scripts among `bench/*.ts` (a top-level await of a cluster or of placed systems) that start
 * systems in processes of their own and so hand those processes this process's environment.
 */
async function scriptsPlacingSystems(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.ts')) continue
    const text = await Bun.file(join(dir, name)).text()
    const script = /^[^\s/].*\bawait\b.*\b(startBenchCluster|withPlacedSystems)\(/m.test(text)
    if (script && /\b(placedSystem|hostedSystem|withPlacedSystems)\(/.test(text))
      out.set(name, text)
  }
  return out
}

test('every bench script that starts systems in their own processes runs in the image’s environment', async () => {
  const scripts = await scriptsPlacingSystems(BENCH)
  // The suite's own and the paired pickup tools among them: the scan finds what it should.
  for (const name of ['run.ts', 'idle-pickup-turns.ts', 'pickup-turns.ts', 'drain-turns.ts'])
    expect([...scripts.keys()]).toContain(name)
  // An allocator setting takes effect only when a process starts: a tool that leaves it out
  // measures Bun's default allocator, not the deployed one (round 33: the engine's pickup after
  // idle took 29 page faults there, 1 in the image's environment).
  const without = [...scripts].filter(([, text]) => !/^await inImageEnv\(\)/m.test(text))
  expect(without.map(([name]) => name)).toEqual([])
})
