// Runs one of Postgres's tools (initdb) as Postgres's user: its output to the log, a failure with its exit code and stderr.
import { spawn } from 'node:child_process'
import type { RunAs } from './postgres-user.ts'
import { postgresEnv } from './server-process.ts'

export function runTool(file: string, args: string[], runAs: RunAs, log: (l: string) => void) {
  return new Promise<void>((resolve, reject) => {
    const p = spawn(file, args, { ...runAs, env: postgresEnv() })
    let err = ''
    p.stdout?.on('data', (c: Buffer) => log(c.toString()))
    p.stderr?.on('data', (c: Buffer) => {
      err += c.toString()
      log(c.toString())
    })
    p.on('error', reject)
    p.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${file} exited ${code}: ${err.trim()}`)),
    )
  })
}
