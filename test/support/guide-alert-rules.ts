// The deploy guide's suggested alert rules (section 11's table) and what each asks of a scrape: the series it names, the labels (and values) it matches, groups and subtracts by.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createMetricFamilies } from '../../src/api/metric-families.ts'

const ROOT = resolve(import.meta.dir, '../..')

/**
 * Each alert of the guide's table whose rule is a PromQL expression: its name, that expression and
 * its `for` in minutes (0 when none).
 */
export function guideAlertRules(): { alert: string; rule: string; forMin: number }[] {
  const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
  const table = guide.slice(guide.indexOf('## 11. Alerts'), guide.indexOf('## 12. '))
  return [...table.matchAll(/^\| ([^|]+) \| `([^`]+)`(?: for (\d+) m)? \|/gm)]
    .map((m) => ({ alert: m[1]!, rule: m[2]!.replaceAll('\\|', '|'), forMin: Number(m[3] ?? 0) }))
    .filter((r) => r.rule.includes('outbox_'))
}

/**
 * Exported by a Graph worker only (serve exports them at 0 where it asks Entra for tokens), though
 * their help does not say so as the Graph gauges' does ("Absent without the Graph transport").
 */
const GRAPH_WORKER_ONLY = new Set(['outbox_token_refreshes_total'])

/** The label names of each series a scrape's text holds, by metric name (a sample line each). */
function scrapedLabels(lines: string[]): Map<string, string[][]> {
  const seen = new Map<string, string[][]>()
  for (const line of lines) {
    const m = /^(outbox_\w+)(?:\{([^}]*)\})? \S+$/.exec(line)
    if (!m) continue
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="/g)].map((l) => l[1]!).sort()
    seen.set(m[1]!, [...(seen.get(m[1]!) ?? []), labels])
  }
  return seen
}

/** The values each label of a metric takes in a scrape's text, by `name label`. */
function scrapedValues(lines: string[]): Map<string, Set<string>> {
  const seen = new Map<string, Set<string>>()
  for (const line of lines) {
    const m = /^(outbox_\w+)\{([^}]*)\} \S+$/.exec(line)
    for (const [, label, value] of m ? m[2]!.matchAll(/(\w+)="([^"]*)"/g) : []) {
      const key = `${m![1]} ${label}`
      seen.set(key, (seen.get(key) ?? new Set()).add(value!))
    }
  }
  return seen
}

/**
 * What the guide's rules ask that `scrape` (a worker's /metrics, its lines) does not give: a series
 * named that no process exports (one absent from this scrape must say it is absent without the Graph
 * transport, as the gauges of a Graph worker do); a label matched or grouped by that its metric does
 * not carry, or a value it matches that no series of the scrape carries (a typo'd `cause="unavailabe"`
 * never matches, and `cause!="unavailabe"` matches every series: either rule reads nothing it says);
 * a subtraction of two series whose labels differ (PromQL pairs them by every label: a
 * series left without its pair drops out, and the rule never fires). Empty when none.
 */
export async function alertRuleProblems(scrape: string[]): Promise<string[]> {
  const families = createMetricFamilies().registry
  const scraped = scrapedLabels(scrape)
  const values = scrapedValues(scrape)
  const labelsOf = (name: string) =>
    (families.getSingleMetric(name) as unknown as { labelNames?: string[] } | undefined)
      ?.labelNames ?? null
  const helpOf = async (name: string) =>
    new RegExp(`^# HELP ${name} (.*)$`, 'm').exec(await families.metrics())?.[1] ?? ''
  const problems: string[] = []
  for (const { alert, rule } of guideAlertRules()) {
    const say = (what: string) => problems.push(`${alert}: ${what}`)
    for (const [, name] of rule.matchAll(/\b(outbox_\w+)/g)) {
      const labels = labelsOf(name!)
      if (labels === null) say(`${name} is no metric`)
      else if (
        !scraped.has(name!) &&
        !GRAPH_WORKER_ONLY.has(name!) &&
        !(await helpOf(name!)).includes('without the Graph transport')
      )
        say(`${name} is not in a worker's scrape`)
    }
    const asked = [
      ...[...rule.matchAll(/\b(outbox_\w+)\{([^}]*)\}/g)].flatMap(([, name, m]) =>
        [...m!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => [name!, l[1]!]),
      ),
      ...[...rule.matchAll(/\bby \(([^)]*)\) \((outbox_\w+)/g)].flatMap(([, by, name]) =>
        by!.split(',').map((l) => [name!, l.trim()]),
      ),
    ]
    for (const [name, label] of asked) {
      if (!labelsOf(name!)?.includes(label!)) say(`${name} carries no label ${label}`)
    }
    // Values are checked where the scrape has the metric: a worker exports each at 0 from its start.
    for (const [, name, m] of rule.matchAll(/\b(outbox_\w+)\{([^}]*)\}/g)) {
      for (const [, label, op, value] of m!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
        const known = values.get(`${name} ${label}`)
        if (!scraped.has(name!) || !known) continue
        if (op!.includes('~') && !/^[\w|]+$/.test(value!)) continue
        const wanted = op!.includes('~') ? value!.split('|') : [value!]
        for (const v of wanted)
          if (!known.has(v))
            say(`${name}{${label}${op}"${value}"}: no series carries ${label}="${v}"`)
      }
    }
    for (const [, a, b] of rule.matchAll(/\b(outbox_\w+) - (outbox_\w+)\b/g)) {
      const [la, lb] = [labelsOf(a!), labelsOf(b!)].map((l) => [...(l ?? [])].sort().join(','))
      const [sa, sb] = [scraped.get(a!), scraped.get(b!)].map((s) => JSON.stringify(s ?? null))
      if (la !== lb || sa !== sb)
        say(`${a} - ${b}: labels ${la} (scraped ${sa}) against ${lb} (scraped ${sb})`)
    }
  }
  return problems
}
