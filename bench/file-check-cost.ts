// `bun run bench/file-check-cost.ts [rounds]`: the CPU a stored file's check costs each read and send of its row, decoded (today) against matched (round 56's pattern).
//
// In this process, no database: sendableAttachments (the check GET /v1/outbox/{id} and a worker's
// send run on a stored message's files) against the check it replaced (the base64 pattern over
// the whole content, then its whitespace stripped, then whole groups of four), taking turns, the
// order rotating round by round, on files shaped as JSON.parse hands them over: the 2 MB file of
// bench/detail-read-turns.ts's `large` row in one line, the same in 76-character lines ended by
// CRLF, and a 4 KB one. Reported: CPU time per call (user + system), the median over rounds and
// their range, and the median of each round's old ÷ new.
import { sendableAttachments } from '../src/outbox/stored-attachments.ts'
import { median } from './percentiles.ts'

const rounds = Number(process.argv[2] ?? 10)
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error('usage: bun run bench/file-check-cost.ts [rounds ≥ 1]')
  process.exit(2)
}

/** The check as round 56 shipped it (stored-attachments.ts at 01800366), the words left out. */
function matched(attachments: { contentBase64: string }[]): string[] {
  return attachments.map((a) => {
    if (!/^[A-Za-z0-9+/\t\n\v\f\r ]*(?:={1,2}[\t\n\v\f\r ]*)?$/.test(a.contentBase64))
      throw new Error('not base64')
    const content = a.contentBase64.replace(/\s+/g, '')
    if (content.length % 4 !== 0) throw new Error('not whole groups of four')
    return content
  })
}

const large = Buffer.alloc(2_000_000, 'scan').toString('base64')
const shapes = {
  '2 MB, one line': large,
  '2 MB, 76-column lines': large.replace(/(.{76})/g, '$1\r\n'),
  '4 KB, one line': Buffer.alloc(4_096, 'scan').toString('base64'),
}
const cpuMsPerCall = (f: () => unknown, calls: number): number => {
  const start = process.cpuUsage()
  for (let i = 0; i < calls; i++) f()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1000 / calls
}

console.log(`${rounds} rounds; CPU ms per call, median (range of rounds)`)
for (const [shape, contentBase64] of Object.entries(shapes)) {
  const files = JSON.parse(JSON.stringify([{ filename: 'scan.pdf', contentBase64 }]))
  const calls = contentBase64.length > 1_000_000 ? 40 : 20_000
  const checks = {
    matched: () => matched(files),
    decoded: () => sendableAttachments(files),
  }
  for (const check of Object.values(checks)) cpuMsPerCall(check, calls / 4)
  const ms: Record<keyof typeof checks, number[]> = { matched: [], decoded: [] }
  for (let round = 0; round < rounds; round++) {
    const order =
      round % 2 === 0 ? (['matched', 'decoded'] as const) : (['decoded', 'matched'] as const)
    for (const name of order) ms[name].push(cpuMsPerCall(checks[name], calls))
  }
  const shown = (xs: number[]) =>
    `${median(xs).toFixed(4)} (${Math.min(...xs).toFixed(4)}–${Math.max(...xs).toFixed(4)})`
  const ratio = median(ms.matched.map((m, i) => m / (ms.decoded[i] as number)))
  console.log(
    `${shape.padEnd(22)} matched ${shown(ms.matched)} · decoded ${shown(ms.decoded)} · matched ÷ decoded ${ratio.toFixed(1)}×`,
  )
}
