// A running postgres server: started as a child, or as a grandchild that a shell starts and reaps.
import { type ChildProcess, spawn } from 'node:child_process'
import { constants } from 'node:os'
import type { RunAs } from './postgres-user.ts'

/** How a server ended: its exit code, or the signal that ended it (null where unknown). */
export interface ServerExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A running postgres: its server log, a way to signal it, and its end. */
export interface Server {
  output: NodeJS.ReadableStream
  kill(signal: NodeJS.Signals): void
  /** The server has exited. */
  exited: Promise<ServerExit>
  /** It could not be started at all. */
  failed: Promise<never>
}

/**
 * The environment of every Postgres program started here (initdb, postgres): the C locale, so the
 * server's log is in English whatever the machine's language (start waits for "ready to accept
 * connections" in it).
 */
export const postgresEnv = (): NodeJS.ProcessEnv => ({ ...process.env, LC_ALL: 'C' })

/**
 * `ownGroup`: in a process group (and session) of its own, so a terminal's Ctrl+C, a SIGINT to its
 * whole foreground group, reaches only the parent, which stops the server when it is done with it.
 */
export function spawnChild(
  postgres: string,
  flags: string[],
  runAs: RunAs,
  ownGroup = false,
): Server {
  const p: ChildProcess = spawn(postgres, flags, {
    ...runAs,
    env: postgresEnv(),
    detached: ownGroup,
  })
  return {
    output: p.stderr!,
    kill: (signal) => void p.kill(signal),
    exited: new Promise((r) => p.once('exit', (code, signal) => r({ code, signal }))),
    failed: new Promise((_, reject) => p.once('error', reject)),
  }
}

// The shell prints the server's pid, then passes on the server's log (stderr, on the shell's
// stdout) and waits for it, so the server is reaped when it exits, and prints its exit status;
// killed, it leaves the server running. The pipe closes once the server and every process it
// started have exited.
export function spawnGrandchild(postgres: string, flags: string[], runAs: RunAs): Server {
  const sh = spawn(
    'sh',
    [
      '-c',
      '"$0" "$@" 2>&1 </dev/null & echo "pid:$!"; wait "$!"; echo "status:$?"',
      postgres,
      ...flags,
    ],
    {
      ...runAs,
      env: postgresEnv(),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const output = sh.stdout!
  let pid: number | null = null
  let end: ServerExit = { code: null, signal: null }
  const pidSeen = Promise.withResolvers<number>()
  output.on('data', (c: Buffer) => {
    const m = pid === null ? /pid:(\d+)/.exec(c.toString()) : null
    if (m) {
      pid = Number(m[1])
      pidSeen.resolve(pid)
    }
    const status = /^status:(\d+)$/m.exec(c.toString())?.[1]
    if (status !== undefined) end = shellStatus(Number(status))
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
    exited: new Promise((r) => output.once('close', () => r(end))),
    failed: new Promise((_, reject) => sh.once('error', reject)),
  }
}

/**
 * `output`'s end, waited for at most `ms` once asked (a process's exit can come before its last
 * lines are read; a pipe its children still hold may never end).
 */
export function outputEnd(output: NodeJS.ReadableStream): (ms: number) => Promise<void> {
  const ended = new Promise<void>((r) => {
    output.once('end', r)
    output.once('close', r)
  })
  return (ms) => Promise.race([ended, new Promise<void>((r) => setTimeout(r, ms))])
}

/** A shell's `$?`: 128 + N for a process that signal N ended. */
function shellStatus(status: number): ServerExit {
  if (status <= 128) return { code: status, signal: null }
  const name = Object.entries(constants.signals).find(([, n]) => n === status - 128)?.[0]
  return { code: null, signal: (name as NodeJS.Signals | undefined) ?? null }
}
