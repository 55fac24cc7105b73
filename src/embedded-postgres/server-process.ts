// A running postgres server: started as a child, or as a grandchild that a shell starts and reaps.
import { type ChildProcess, spawn } from 'node:child_process'
import type { RunAs } from './postgres-user.ts'

/** A running postgres: its server log, a way to signal it, and its end. */
export interface Server {
  output: NodeJS.ReadableStream
  kill(signal: NodeJS.Signals): void
  /** The server has exited. */
  exited: Promise<void>
  /** It could not be started at all. */
  failed: Promise<never>
}

/**
 * The environment of every Postgres program started here (initdb, postgres): the C locale, so the
 * server's log is in English whatever the machine's language (start waits for "ready to accept
 * connections" in it).
 */
export const postgresEnv = (): NodeJS.ProcessEnv => ({ ...process.env, LC_ALL: 'C' })

export function spawnChild(postgres: string, flags: string[], runAs: RunAs): Server {
  const p: ChildProcess = spawn(postgres, flags, {
    ...runAs,
    env: postgresEnv(),
  })
  return {
    output: p.stderr!,
    kill: (signal) => void p.kill(signal),
    exited: new Promise((r) => p.once('exit', () => r())),
    failed: new Promise((_, reject) => p.once('error', reject)),
  }
}

// The shell prints the server's pid, then passes on the server's log (stderr, on the shell's
// stdout) and waits for it, so the server is reaped when it exits; killed, it leaves the server
// running. The pipe closes once the server and every process it started have exited.
export function spawnGrandchild(postgres: string, flags: string[], runAs: RunAs): Server {
  const sh = spawn(
    'sh',
    ['-c', '"$0" "$@" 2>&1 </dev/null & echo "pid:$!"; wait', postgres, ...flags],
    {
      ...runAs,
      env: postgresEnv(),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const output = sh.stdout!
  let pid: number | null = null
  const pidSeen = Promise.withResolvers<number>()
  output.on('data', (c: Buffer) => {
    const m = pid === null ? /pid:(\d+)/.exec(c.toString()) : null
    if (m) {
      pid = Number(m[1])
      pidSeen.resolve(pid)
    }
  })
  return {
    output,
    kill: (signal) => {
      // Gone already (its pid not yet seen as closed): nothing to signal.
      const send = (p: number) => {
        try {
          process.kill(p, signal)
        } catch {}
      }
      if (pid !== null) send(pid)
      else void pidSeen.promise.then(send)
    },
    exited: new Promise((r) => output.once('close', () => r())),
    failed: new Promise((_, reject) => sh.once('error', reject)),
  }
}
