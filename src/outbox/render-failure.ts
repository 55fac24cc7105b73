// Why a row did not render, as its failure records it: the RenderError's code (any other error template_error) and its text, a refused address worded by the database.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { AddressRefused, wordedRefusal } from './address-refusal.ts'
import { RenderError } from './render-error.ts'

export interface RenderFailure {
  code: string
  message: string
}

/**
 * The code and text a row that `thrown` stopped rendering fails with (deliver.ts) and its
 * inspection shows (row-rendering.ts): one wording for both. A refused address costs one round
 * trip to word it as enqueue does; anything else none.
 */
export async function renderFailure(
  d: { db: Kysely<Database>; dbName: string; log: Logger },
  thrown: unknown,
  outboxId: string,
): Promise<RenderFailure> {
  const code = thrown instanceof RenderError ? thrown.code : 'template_error'
  if (thrown instanceof AddressRefused)
    return { code, message: await wordedRefusal(d, thrown, outboxId) }
  return { code, message: thrown instanceof Error ? thrown.message : String(thrown) }
}
