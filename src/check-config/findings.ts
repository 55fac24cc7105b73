// Findings: what one check-config step reports (its checks passed and its problems), and how an error reads in them.
import { describeError } from '../errors.ts'
export interface Findings {
  problems: string[]
  checks: string[]
}

export function describe(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) return describe(e.errors[0])
  if (e instanceof Error) return describeError(e) || e.name
  return String(e)
}
