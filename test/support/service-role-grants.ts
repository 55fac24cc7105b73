// The deploy guide's step 7 grants for outbox-mailer's own least-privileged role (`mailer_svc` there), read from deploy/README.md as written.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../deploy/deploy-files.ts'

/** The guide's SQL block granting the service role its rights, for `role`. */
export function serviceRoleGrants(role: string): string {
  const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
  const block = /That role needs these grants[\s\S]*?```sql\n([\s\S]*?)```/.exec(guide)?.[1]
  if (!block) throw new Error('deploy/README.md step 7 has no grants block for the service role')
  return block.replaceAll(/\bmailer_svc\b/g, role)
}
