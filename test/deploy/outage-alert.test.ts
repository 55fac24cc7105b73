// The deploy guide's rules reading the throttle counter: "Graph turning sends away" fires within ten minutes of a Graph outage answering every send, reads the counter's Graph 503s apart from its 429s and from Entra's 5xx, and one short throttle cannot fire it; no rule counts a refusal's waits (cause="other").
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './deploy-files.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
const table = guide.slice(guide.indexOf('## 11. Alerts'), guide.indexOf('## 12. '))

/** The table's rules reading the throttle counter: name, expression, `for` and each series' window, in minutes. */
function throttleRules() {
  return [...table.matchAll(/^\| ([^|]+) \| `([^`]+)`(?: for (\d+) m)? \|/gm)]
    .map(([, alert, rule, forMin]) => ({
      alert: alert!,
      rule: rule!.replaceAll('\\|', '|'),
      forMin: Number(forMin ?? 0),
    }))
    .filter((r) => r.rule.includes('outbox_graph_throttled_total'))
    .map((r) => {
      const windowOf = (series: string) =>
        [...r.rule.matchAll(new RegExp(`${series}(?:\\{[^}]*\\})?\\[(\\d+)m\\]`, 'g'))].map((m) =>
          Number(m[1]),
        )
      return {
        ...r,
        throttled: windowOf('outbox_graph_throttled_total'),
        sent: windowOf('outbox_sends_total'),
      }
    })
}

test('a rule fires within ten minutes of a Graph outage answering 503 to every send, counting Graph 503s and 504s alone (not Entra 5xx), and one 429 of a minute cannot fire it', () => {
  // oncall55: a 503 to every send (each mailbox paused 30 s at a time, one probe per pause) fired
  // nothing for a quarter hour: "Outbox backing up" at ~15 min, "Mailbox throttled" at 30.
  const soon = throttleRules()
    .filter((r) => r.forMin > 0 && Math.max(...r.throttled, ...r.sent) + r.forMin <= 10)
    .map((r) => ({
      alert: r.alert,
      // No row sent over the window: an outage, not a mailbox throttled between sends.
      readsSent: r.rule.includes(
        'unless on (db) sum by (db) (increase(outbox_sends_total{outcome="sent"}',
      ),
      // A mailbox Graph refuses is "Mailbox refused"'s, not this one's: subtracted at each scrape,
      // so a mailbox's pause counts by its own cause. alerts58: the most of each gauge over the
      // window apart let a refused pause hide the throttle's that replaced it (its probe met the
      // outage) for 3 minutes (promtool: firing at 12 min, not 9).
      leavesRefusals: r.rule.includes(
        'max_over_time((outbox_mailboxes_paused - outbox_mailboxes_paused_refused)[',
      ),
      // One count (a single 429) leaves the counter's window before the `for` has run.
      oneCountQuiet: r.throttled.every((w) => w < r.forMin),
      // Graph unavailable (503, 504), not throttling (429): an outage, not a mailbox at its limit;
      // and Graph's, not Entra's: alerts57, an Entra outage (503s to the token requests, each due
      // row given back per token delay) while an earlier 429's pause stood fired it (promtool).
      counts: [...r.rule.matchAll(/outbox_graph_throttled_total(\{[^}]*\})?\[/g)].map(
        (m) => m[1] ?? '(every cause)',
      ),
    }))
  expect(soon).toEqual([
    {
      alert: 'Graph turning sends away',
      readsSent: true,
      leavesRefusals: true,
      oneCountQuiet: true,
      counts: ['{cause="unavailable",service="graph"}'],
    },
  ])
})

test('no rule reading the throttle counter counts its `other` waits: a refused credential fires "Credential refused", not "Mailbox throttled" half an hour on', () => {
  // review36: Entra refusing the credential gives back a batch a minute per worker, each a wait of
  // cause="other" (AADSTS…), so a rule summing every cause held "Mailbox throttled" firing from
  // 30 minutes on (promtool, the counter's `other` rising 10 a minute: firing at 40 m) with words
  // that send the reader to Exchange's limits.
  const counted = throttleRules().map((r) => ({
    alert: r.alert,
    counts: [...r.rule.matchAll(/outbox_graph_throttled_total(\{[^}]*\})?\[/g)].map(
      (m) => m[1] ?? '(every cause)',
    ),
  }))
  expect(counted).toEqual([
    { alert: 'Mailbox throttled', counts: ['{cause!="other"}'] },
    { alert: 'Graph turning sends away', counts: ['{cause="unavailable",service="graph"}'] },
  ])
})
