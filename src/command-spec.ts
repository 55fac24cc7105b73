// What a command accepts and says of itself: the shape of each entry of the command table (commands.ts).
import type { EXIT } from './errors.ts'

export type ExitName = keyof typeof EXIT

/** What a command accepts and says of itself; help is printed from this, so it cannot drift from parsing. */
export interface CommandSpec {
  usage: string
  does: string
  /** Each flag's kind (a switch, or one that takes a value) and what it does. */
  flags: Readonly<
    Record<
      string,
      {
        kind: 'switch' | 'value'
        shown?: string
        does: string
        /** Refused by parseArgs when absent, before the environment is read. */
        required?: true
      }
    >
  >
  /** The variables that matter to this command (names in ENV_VARS); `--help` lists them all. */
  env: readonly string[]
  /** The exit codes it returns, each with what it means for this command. */
  exits: Readonly<Partial<Record<ExitName, string>>>
  example: string
}
