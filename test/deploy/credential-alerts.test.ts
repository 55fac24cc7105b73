// The deploy guide's rules on the Graph credential: "Token failures" fires on token requests failing on, per machine, and neither it nor "Credential refused" on one Entra takes back at its next try; "Credential refused" before the mail stops.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { GraphAuthError } from '../../src/transport/graph-token-error.ts'
import { REFRESH_AHEAD_MS } from '../../src/transport/graph-token-request.ts'
import {
  PERMANENT_FAILURE_COOLDOWN_MS,
  tokenHoldOffMs,
} from '../../src/transport/token-hold-off.ts'
import { guideAlertRules } from '../support/guide-alert-rules.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const MINUTE_MS = 60_000

function guideRule(alert: string) {
  const found = guideAlertRules().find((r) => r.alert === alert)
  if (!found) throw new Error(`the guide's table has no rule "${alert}"`)
  return found
}

/** The window, in minutes, of each read of outbox_token_refreshes_total{outcome="<outcome>"}. */
function refreshWindows(rule: string, outcome: string) {
  return [
    ...rule.matchAll(
      new RegExp(`outbox_token_refreshes_total\\{outcome="${outcome}"\\}\\[(\\d+)m\\]`, 'g'),
    ),
  ].map((m) => Number(m[1]))
}

test('"Token failures" fires once a machine\'s token requests keep failing with none answered, not for one Entra takes back at its next try', () => {
  // alerts58: `increase(…{outcome="failure"}[15m]) > 0`, no `for`, fired (promtool) at a single
  // token_timeout the timer's retry 30 s later mended, and at one refusal of a secret not yet
  // replicated, taken back at the next ask a minute later, and held firing 15 minutes after a fix.
  const { rule, forMin } = guideRule('Token failures')
  const failed = refreshWindows(rule, 'failure')
  const answered = refreshWindows(rule, 'success')
  // The longest a blip waits for its next try: a refusal's cooldown (a transient failure's backoff
  // starts at a second, the refresh-ahead timer's retry at 30 s).
  const blipMs = PERMANENT_FAILURE_COOLDOWN_MS
  // The longest between two tries of a failure that lasts: Entra's backoff at its cap.
  const transient = new GraphAuthError('token_http_503', 'HTTP 503', false, 503)
  const longestGapMs = tokenHoldOffMs(transient, 1_000)
  expect({
    // The token that came since the failure stops it: no failure in the window left unanswered.
    readsAnswers: answered.length === 1 && answered[0]! >= Math.max(...failed),
    // Each machine by its own requests: one refused alone (a mistyped secret on one machine)
    // fires while another's refresh succeeds, which a sum over machines would hide.
    perMachine:
      rule.includes(' unless ignoring (outcome) increase(') && !/\b(sum|max|min)\b/.test(rule),
    // A blip's failure reads true until its next try answers: the `for` outlasts it.
    outlastsABlip: forMin * MINUTE_MS >= 2 * blipMs,
    // A failure that lasts stays in the window between two tries, so the `for` runs on.
    holdsBetweenTries: failed.length === 1 && failed[0]! * MINUTE_MS > longestGapMs,
  }).toEqual({ readsAnswers: true, perMachine: true, outlastsABlip: true, holdsBetweenTries: true })
})

test('"Credential refused" fires before the mail stops when the refresh ahead meets the refusal, not for one refusal Entra takes back at its next ask', () => {
  // alerts58: for 5 m, a refusal met by the refresh ahead (its gauge 1 from then) fired as the
  // cached token's use ended, when the mail stopped (promtool: refused at 2 min, firing at 7.0).
  const { forMin } = guideRule('Credential refused')
  // The gauge reads 1 from a refusal until a token comes: one taken back at the next ask reads 1
  // for the refusal's cooldown and a scrape (Fly's, 15 s), a new secret not yet replicated.
  const blipMs = PERMANENT_FAILURE_COOLDOWN_MS + 15_000
  expect({
    quietForABlip: forMin * MINUTE_MS > blipMs,
    // The refresh ahead meets a refusal REFRESH_AHEAD_MS before the cached token's use ends: the
    // rule fires a minute before the mail stops at least.
    firesBeforeTheMailStops: forMin * MINUTE_MS + MINUTE_MS <= REFRESH_AHEAD_MS,
  }).toEqual({ quietForABlip: true, firesBeforeTheMailStops: true })
})
