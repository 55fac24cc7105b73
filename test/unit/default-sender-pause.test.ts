// MAIL_FROM's pause as a drainer knows it: left out while it stands, one probe at its end, back to the usual claim after.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Lease } from '../../src/outbox/claim.ts'
import { createDefaultSenderPause } from '../../src/outbox/default-sender-pause.ts'
import { openGate, type SendGate } from '../../src/outbox/send-gate.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const gate: SendGate = { ...openGate, open: false, pausedBeyondMs: 5_000 }
const lease = (id: string) => ({ id }) as Lease

describe('MAIL_FROM’s pause in the claims', () => {
  test('met, its claims leave MAIL_FROM out; the pause over, one row probes and nothing else is claimed until it is done', () => {
    const p = createDefaultSenderPause(gate, 'Sender <Sender@Example.com>')
    expect(p.claimParam()).toBeUndefined()
    // Unpaused, each claim first reads whether the database owes the pause or its probe.
    expect(p.guardParam()).toEqual({ key: 'sender@example.com', holdMs: 5_000 })
    p.mailboxPaused('other@example.com')
    expect(p.claimParam()).toBeUndefined()
    // Keyed as the gate keys a mailbox: trimmed, lower case.
    p.mailboxPaused(' SENDER@example.com ')
    expect(p.claimParam()).toEqual({ key: 'sender@example.com', holdMs: 5_000 })
    expect(p.guardParam()).toBeUndefined()
    // Still standing: the claim said so, the state stays.
    p.claimed(60_000, [])
    expect(p.claimParam()).toBeDefined()
    expect(p.limit(10)).toBe(10)
    // Over: the claim took one row, the probe; no other claim until it is done.
    const probe = lease('1')
    p.claimed(null, [probe])
    expect(p.claimParam()).toBeUndefined()
    expect(p.limit(10)).toBe(0)
    expect(p.guardParam()).toBeUndefined()
    expect(p.done(lease('2'))).toBe(false)
    expect(p.limit(10)).toBe(0)
    // Its verdict (its send asked of Graph), for the database too: the probe is answered. No claim
    // until that answer is recorded (it would read the probe still owed).
    expect(p.done(probe, true)).toBe(true)
    expect([p.limit(10), p.guardParam(), p.claimParam()]).toEqual([0, undefined, undefined])
    p.answered(lease('2'))
    expect(p.limit(10)).toBe(0)
    p.answered(probe)
    expect(p.limit(10)).toBe(10)
    expect(p.guardParam()).toBeDefined()
    expect(p.claimParam()).toBeUndefined()
  })

  test('a probe that meets the pause again puts the claims back to leaving MAIL_FROM out', () => {
    const p = createDefaultSenderPause(gate, 'sender@example.com')
    p.mailboxPaused('sender@example.com')
    const probe = lease('1')
    p.claimed(null, [probe])
    p.mailboxPaused('sender@example.com')
    // Owed again (the new pause said so): not answered.
    expect(p.done(probe, true)).toBe(false)
    expect(p.claimParam()).toEqual({ key: 'sender@example.com', holdMs: 5_000 })
    expect(p.limit(10)).toBe(10)
    // Over with nothing due: back to the usual claim at once.
    p.claimed(null, [])
    expect(p.claimParam()).toBeUndefined()
  })

  test('over before MAIL_FROM’s first row is due (probeInMs): the rows taken name other senders, no probe; the claims leave MAIL_FROM out until it is', () => {
    const p = createDefaultSenderPause(gate, 'sender@example.com')
    p.mailboxPaused('sender@example.com')
    const other = lease('7')
    p.claimed(null, [other], 4_000)
    expect(p.claimParam()).toEqual({ key: 'sender@example.com', holdMs: 5_000 })
    expect(p.limit(10)).toBe(10)
    p.done(other)
    expect(p.claimParam()).toBeDefined()
    // Its row due: that claim's row is the probe.
    const probe = lease('1')
    p.claimed(null, [probe], null)
    expect(p.claimParam()).toBeUndefined()
    expect(p.limit(10)).toBe(0)
    p.done(probe, true)
    p.answered(probe)
    expect(p.limit(10)).toBe(10)
  })

  test('paused again while the probe’s answer is recorded: the claims leave MAIL_FROM out, and that answer’s end changes nothing', () => {
    const p = createDefaultSenderPause(gate, 'sender@example.com')
    p.mailboxPaused('sender@example.com')
    const probe = lease('1')
    p.claimed(null, [probe])
    expect(p.done(probe, true)).toBe(true)
    p.mailboxPaused('sender@example.com')
    expect([p.claimParam(), p.limit(10)]).toEqual([
      { key: 'sender@example.com', holdMs: 5_000 },
      10,
    ])
    const next = lease('2')
    p.claimed(null, [next])
    p.answered(probe)
    expect([p.claimParam(), p.limit(10)]).toEqual([undefined, 0])
  })

  test('a probe settled unsent (cancelled or expired before its send, lost) is no verdict: the claims leave MAIL_FROM out and probe again', () => {
    const p = createDefaultSenderPause(gate, 'sender@example.com')
    p.mailboxPaused('sender@example.com')
    const probe = lease('1')
    p.claimed(null, [probe])
    expect(p.done(probe, false)).toBe(false)
    expect([p.claimParam(), p.limit(10)]).toEqual([
      { key: 'sender@example.com', holdMs: 5_000 },
      10,
    ])
    const next = lease('2')
    p.claimed(null, [next])
    expect(p.limit(10)).toBe(0)
    expect(p.done(next, true)).toBe(true)
  })

  test('a gate that never pauses, or no MAIL_FROM, never leaves anything out', () => {
    for (const p of [
      createDefaultSenderPause(openGate, 'sender@example.com'),
      createDefaultSenderPause(gate, null),
    ]) {
      p.mailboxPaused('sender@example.com')
      expect(p.claimParam()).toBeUndefined()
      // Nor reads a pause before its claims: the common claim stays as it was.
      expect(p.guardParam()).toBeUndefined()
      expect(p.limit(10)).toBe(10)
    }
  })
})
