// A stored message's recipients and sender, checked at send as enqueue checks them (mailer.normalize_recipients).
import { isEmailAddress } from '../config/email-address.ts'
import { AddressRefused, NOT_AN_ADDRESS } from './address-refusal.ts'
import { namedAddress } from './email-address.ts'
import { foldControlCharacters } from './header-text.ts'
import { invalidMessage as invalid } from './render-error.ts'
import type { MailAddress } from './sender.ts'
import type { StoredMessage } from './stored-message.ts'

// btrim's spaces only (a tab is no part of an address, and makes it invalid); no copy without any.
const trimSpaces = (s: string) =>
  s.startsWith(' ') || s.endsWith(' ') ? s.replace(/^ +| +$/g, '') : s

/**
 * The address trimmed of spaces and the display name on one line, as enqueue stores them; the same
 * object when neither changes.
 */
function sendableAddress(a: MailAddress): MailAddress {
  const address = trimSpaces(a.address)
  if (typeof a.name !== 'string') return address === a.address ? a : { ...a, address }
  const name = foldControlCharacters(a.name)
  return address === a.address && name === a.name ? a : { ...a, address, name }
}

/** An entry that is neither an address string nor {address, name?}, in enqueue's words. */
const SHAPE_REFUSED = 'must be an address string or {"address","name"}'

/**
 * An entry's name in a refusal, as mailer.normalize_recipients names it (sql/0168): from is one
 * address and a lone value was stored as one, named by the field itself; a list's entries by their
 * index.
 */
const entryName = (field: string, list: unknown, i: number) =>
  field === 'message.from' || !Array.isArray(list) ? field : `${field}[${i}]`

/**
 * The recipients as MailAddresses. enqueue_email stores [{address, name?}]; a row inserted directly
 * may hold its input shapes too ("a@b.c", "Name <a@b.c>", one object), which are taken as enqueue
 * would take them.
 */
export function sendableAddresses(list: unknown, field: string): MailAddress[] {
  if (list === undefined || list === null) return []
  const items: unknown[] = Array.isArray(list) ? list : [list]
  return items.map((a, i) => {
    if (typeof a === 'string') {
      const address = a.trim()
      return (isEmailAddress(address) ? null : namedAddress(a)) ?? { address }
    }
    const o = a as Partial<MailAddress> | null
    if (
      typeof o === 'object' &&
      o !== null &&
      typeof o.address === 'string' &&
      (o.name === undefined || o.name === null || typeof o.name === 'string')
    )
      return sendableAddress(o as MailAddress)
    throw invalid(entryName(field, list, i), SHAPE_REFUSED)
  })
}

// How many entries a field holds: a list's, or one alone, as mailer.normalize_recipients takes them.
const countOf = (list: unknown): number =>
  list === undefined || list === null ? 0 : Array.isArray(list) ? list.length : 1

/**
 * Each entry, in the list's order as enqueue judges them: an address string (or "Name <address>")
 * that is one (mailer.is_email_address) once trimmed of spaces, as enqueue trims it, else refused
 * (AddressRefused: enqueue itself words it, address-refusal.ts: a list in one string, a domain not
 * in A-labels named as such); an object's address so, named at .address (one that is no string is
 * no address), and its name a string if given, named at .name; anything else named as the entry.
 * (An object's other keys, which enqueue refuses, are left: such a row is sent, as before.)
 * A loop, no closure or array made per call: it runs on every pickup's way to its send.
 */
function checkAddresses(list: unknown, field: string): void {
  if (list === undefined || list === null) return
  if (!Array.isArray(list)) checkAddress(list, field, list, 0)
  else for (let i = 0; i < list.length; i++) checkAddress(list[i], field, list, i)
}

/** One entry of checkAddresses' (`list` and `i` name it, only once refused). */
function checkAddress(a: unknown, field: string, list: unknown, i: number): void {
  if (typeof a === 'string') {
    // A string may also be "Name <address>" (sql/0035), as enqueue takes it.
    if (isEmailAddress(trimSpaces(a)) || namedAddress(a) !== null) return
    throw refused(a, field, entryName(field, list, i))
  }
  if (typeof a !== 'object' || a === null || Array.isArray(a))
    throw invalid(entryName(field, list, i), SHAPE_REFUSED)
  const { address, name } = a as { address?: unknown; name?: unknown }
  // An address that is no string is no address (enqueue's plain words, nothing to ask about).
  if (typeof address !== 'string')
    throw invalid(`${entryName(field, list, i)}.address`, NOT_AN_ADDRESS)
  if (!isEmailAddress(trimSpaces(address)))
    throw refused({ address }, field, `${entryName(field, list, i)}.address`)
  if (name !== undefined && name !== null && typeof name !== 'string')
    throw invalid(`${entryName(field, list, i)}.name`, 'must be a string')
}

const refused = (entry: string | { address: string }, field: string, name: string) =>
  new AddressRefused('invalid_message', entry, field, (problem) => `${name} ${problem}`)

/**
 * A stored message's addresses and their numbers, as mailer.normalize_message checks them and in
 * its order (the first problem is the one named): at most 500 recipients (to, cc and bcc together)
 * and 500 reply-to addresses, each address valid, at least one recipient, one sender. Shapes are
 * left to sendableAddresses.
 */
export function checkStoredRecipients(m: StoredMessage): void {
  const recipients = countOf(m.to) + countOf(m.cc) + countOf(m.bcc)
  if (recipients > 500)
    throw invalid('message.to', 'has too many recipients (at most 500 in to, cc and bcc together)')
  if (countOf(m.replyTo) > 500)
    throw invalid('message.replyTo', 'has too many addresses (at most 500)')
  checkAddresses(m.to, 'message.to')
  checkAddresses(m.cc, 'message.cc')
  checkAddresses(m.bcc, 'message.bcc')
  checkAddresses(m.replyTo, 'message.replyTo')
  if (recipients === 0)
    throw invalid(
      'message.to',
      'is required: a message needs at least one recipient in to, cc or bcc',
    )
  if (Array.isArray(m.from)) throw invalid('message.from', 'must be a single address')
  checkAddresses(m.from, 'message.from')
}

/** The one sender: the row's, else the default. */
export function sendableSender(from: unknown, fallback: MailAddress | null): MailAddress | null {
  if (Array.isArray(from)) throw invalid('message.from', 'must be a single address')
  return sendableAddresses(from ?? fallback, 'message.from')[0] ?? null
}
