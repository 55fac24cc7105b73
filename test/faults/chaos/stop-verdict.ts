// A worker's exit after SIGTERM read against its last log lines: a clean stop, one the chaos left sends unrecorded, or a problem.

/**
 * `code` and the stopped worker's log tail: `clean` (exit 0); `unrecorded`: exit 1 naming accepted
 * sends unrecorded whose lease the stop found lost (lostlease's rule: leases the chaos took, Postgres
 * crashed or restarted, backends ended, and another worker reclaimed); else `problem`.
 */
export function stopVerdict(
  code: number,
  logTail: (lines: number) => string,
): 'clean' | 'unrecorded' | 'problem' {
  if (code === 0) return 'clean'
  return code === 1 &&
    logTail(3).includes('"msg":"stopped with accepted sends unrecorded') &&
    logTail(40).includes('"msg":"lease lost before the outcome was recorded"')
    ? 'unrecorded'
    : 'problem'
}
