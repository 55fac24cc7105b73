// Why an address the worker refused is refused, in enqueue's words: asked of mailer.normalize_recipients (address_refusal, sql/0086; a list in one string, 0163), their one definition.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { RenderError } from './render-error.ts'

/** enqueue's plain words, and what a refusal says when the database cannot be asked. */
export const NOT_AN_ADDRESS = 'is not a valid e-mail address'

/**
 * An address the render refused (mailer.is_email_address's rule, config/email-address.ts): a
 * RenderError in the plain words, which the caller holding the database words as enqueue does
 * (wordedRefusal) before the row fails. Thrown only on a refusal: a valid row asks nothing.
 */
export class AddressRefused extends RenderError {
  constructor(
    code: 'invalid_message' | 'template_error',
    /** The entry as written: a string, or an object's address alone (its other keys are not asked about). */
    readonly entry: string | { address: string },
    /** The field as mailer.normalize_recipients is given it: message.from is one address, any other a list. */
    readonly field: string,
    /** The row's failure text given enqueue's problem ("is not a valid e-mail address…"). */
    readonly worded: (problem: string) => string,
  ) {
    super(code, worded(NOT_AN_ADDRESS))
  }
}

// mailer.invalid's "mailer: <entry> <problem>": the entry is the field, or its first entry (the
// one asked about), an object's at .address; an address's problem opens with "is".
const REFUSAL = /^mailer: message\.[A-Za-z]+(?:\[0\])?(?:\.address)? (is .+)$/s

/**
 * enqueue's problem with `entry` of `field`: mailer.normalize_recipients (immutable, it reads no
 * table) refuses it with 22023 and the problem is taken from its words. One taken there is worded
 * plainly: the row stays refused by the worker's rule, which the tests hold to SQL's.
 */
export async function addressRefusal(
  db: Kysely<Database>,
  entry: string | { address: string },
  field: string,
): Promise<string> {
  try {
    await sql`select mailer.normalize_recipients(jsonb_build_array(${JSON.stringify(entry)}::jsonb), ${field})`.execute(
      db,
    )
  } catch (e) {
    const words =
      (e as { code?: unknown }).code === '22023' ? REFUSAL.exec((e as Error).message) : null
    if (words) return words[1]!
    throw e
  }
  return NOT_AN_ADDRESS
}

/**
 * The refusal's text in enqueue's words; the plain words when the database cannot say (an
 * outage: the row is refused all the same, and its settlement waits for the database anyway).
 */
export async function wordedRefusal(
  d: { db: Kysely<Database>; dbName: string; log: Logger },
  e: AddressRefused,
  outboxId: string,
): Promise<string> {
  try {
    return e.worded(await addressRefusal(d.db, e.entry, e.field))
  } catch (err) {
    d.log.warn('could not ask the database how to word a refused address', {
      db: d.dbName,
      outboxId,
      err,
    })
    return e.message
  }
}
