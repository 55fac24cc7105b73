// One benchmarked system by its key (bench/run.ts's database names), for the one-off tools.
import { compiledBinary } from '../../test/support/binary.ts'
import { CEILING_BATCH, ceilingSystem } from './ceiling.ts'
import { graphileSystem } from './graphile.ts'
import { outboxBinarySystem } from './outbox-binary.ts'
import { outboxEngineSystem } from './outbox-engine.ts'
import { pgBossSystem } from './pg-boss.ts'
import type { Probe } from './probe.ts'
import type { BenchSystem } from './system.ts'

export const SYSTEM_KEYS = [
  'ceiling',
  'graphile_defaults',
  'graphile_batched',
  'pgboss_defaults',
  'pgboss_batched',
  'outbox_engine',
  'outbox_binary',
] as const

/** The ceiling with larger claims or its plan left to the planner (bench/ceiling-variants.ts); not in the suite's run. */
export const CEILING_VARIANT_KEYS = [
  'ceiling_unpinned',
  'ceiling_unpinned_2000',
  'ceiling_2000',
] as const
const KNOWN_KEYS: readonly string[] = [...SYSTEM_KEYS, ...CEILING_VARIANT_KEYS]

/** Fails, naming the known keys, before a tool starts anything for a key it does not know. */
export function checkSystemKeys(keys: readonly string[]): void {
  const unknown = keys.filter((k) => !KNOWN_KEYS.includes(k))
  if (unknown.length > 0)
    throw new Error(
      `unknown system ${unknown.map((k) => `"${k}"`).join(', ')}; one of: ${KNOWN_KEYS.join(', ')}`,
    )
}

/**
 * The system `key` names, living in database `key`. The binary's is built (or reused) unless the
 * caller gives its path.
 */
export async function systemByKey(
  key: string,
  url: string,
  probe: Probe,
  binaryPath?: string,
): Promise<BenchSystem> {
  switch (key) {
    case 'ceiling':
      return ceilingSystem(key, url, probe)
    case 'ceiling_unpinned':
    case 'ceiling_unpinned_2000':
    case 'ceiling_2000':
      return ceilingSystem(key, url, probe, {
        claim: key.endsWith('_2000') ? 2000 : CEILING_BATCH,
        unpinned: key.includes('unpinned'),
      })
    case 'graphile_defaults':
    case 'graphile_batched':
      return graphileSystem(key, url, probe, key === 'graphile_batched')
    case 'pgboss_defaults':
    case 'pgboss_batched':
      return pgBossSystem(key, url, probe, key === 'pgboss_batched')
    case 'outbox_engine':
      return outboxEngineSystem(key, url, probe)
    case 'outbox_binary':
      return outboxBinarySystem(key, url, probe, binaryPath ?? (await compiledBinary()), 'graph')
    default:
      checkSystemKeys([key])
      throw new Error(`no constructor for system "${key}"`)
  }
}
