// Every CPU's samples (Linux `perf record -a`) taken while a piece of the benchmark runs, on the wall clock.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** One sample: who was on a CPU, when (epoch seconds) and in which function. */
export interface Sample {
  comm: string
  /** Process id (0: the idle task), and thread id. */
  pid: number
  tid: number
  at: number
  sym: string
  kernel: boolean
}

// `perf script`'s fixed field order: comm pid/tid time: ip sym (dso)
const SAMPLE_LINE = /^\s*(.+?)\s+(-?\d+)\/(-?\d+)\s+(\d+\.\d+):\s+[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$/

export function parseSample(line: string): Sample | null {
  const m = SAMPLE_LINE.exec(line)
  if (!m) return null
  return {
    comm: m[1]!,
    pid: Number(m[2]),
    tid: Number(m[3]),
    at: Number(m[4]),
    sym: m[5]!,
    kernel: m[6] === '[kernel.kallsyms]',
  }
}

let checked: Promise<string> | null = null

/** Fails early, with what to do, when `perf` is missing or may not sample every CPU (checked once). */
export function perfBinary(): Promise<string> {
  checked ??= checkPerf()
  return checked
}

async function checkPerf(): Promise<string> {
  const bin = Bun.which('perf')
  if (!bin)
    throw new Error('perf not found: install it (linux-tools / linux-perf) to run this tool')
  const probe = Bun.spawn([bin, 'record', '-a', '-o', '/dev/null', '--', 'true'], {
    stdout: 'ignore',
    stderr: 'pipe',
  })
  if ((await probe.exited) !== 0)
    throw new Error(
      `perf may not sample every CPU here (run as root, or set kernel.perf_event_paranoid to 0 or less): ${await new Response(probe.stderr).text()}`,
    )
  return bin
}

/**
 * Samples every CPU at `hz` while `run` runs; returns the samples and the lines of perf's output
 * not understood. Timestamps are on the wall clock (CLOCK_REALTIME), to be matched with spans taken
 * from `performance.timeOrigin + performance.now()`.
 */
export async function sampleCpus(
  hz: number,
  run: () => Promise<void>,
): Promise<{ samples: Sample[]; unparsed: number }> {
  const bin = await perfBinary()
  const dir = await mkdtemp(join(tmpdir(), 'perf-samples-'))
  try {
    const file = join(dir, 'perf.data')
    const perf = Bun.spawn(
      [bin, 'record', '-a', '-F', String(hz), '-k', 'CLOCK_REALTIME', '-o', file],
      {
        stdout: 'ignore',
        stderr: 'pipe',
      },
    )
    try {
      await run()
    } finally {
      perf.kill('SIGINT')
    }
    const code = await perf.exited
    // 130: how perf record exits when SIGINT ends the recording, as asked here.
    if (code !== 0 && code !== 130)
      throw new Error(`perf record exited with ${code}: ${await new Response(perf.stderr).text()}`)
    const script = Bun.spawn([bin, 'script', '-i', file, '-F', 'comm,pid,tid,time,ip,sym,dso'], {
      stdout: 'pipe',
      stderr: 'ignore',
    })
    const text = await new Response(script.stdout).text()
    if ((await script.exited) !== 0) throw new Error('perf script failed')
    const samples: Sample[] = []
    let unparsed = 0
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      const s = parseSample(line)
      if (s) samples.push(s)
      else unparsed++
    }
    return { samples, unparsed }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
