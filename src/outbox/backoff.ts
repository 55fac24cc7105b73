// Backoff: capped exponential delays with jitter, so failing rows and retrying workers spread out instead of stampeding.

interface BackoffPolicy {
  baseMs: number
  maxMs: number
}

/** attempt 1 → ~base, 2 → ~2×base, …, capped at max; ±25 % jitter. `rng` returns [0, 1). */
export function retryDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  rng: () => number = Math.random,
): number {
  const exp = policy.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30)
  const capped = Math.min(exp, policy.maxMs)
  return Math.round(capped * (0.75 + 0.5 * rng()))
}

/** A wait spread ±20 %, so that workers retrying together drift apart. */
export const jitter = (ms: number) => ms * (0.8 + Math.random() * 0.4)
