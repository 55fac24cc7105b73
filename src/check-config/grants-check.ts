// Grants check: whether the role of a database's URL holds the rights on schema mailer that the deploy guide's step 7 grants the service, and what to run when not.
import type pg from 'pg'
import { GRANTS_ADVICE } from '../db/grants-advice.ts'

/** Step 7's table rights: the service reads and writes only the mailer tables. */
const TABLE_PRIVILEGES = ['select', 'insert', 'update', 'delete'] as const

interface Lacks {
  role: string
  usage: boolean
  /** privilege → the tables lacking it; `null` when every table lacks it. */
  tables: Record<string, string[] | null>
  /** The functions it may not execute (a database that revokes EXECUTE from PUBLIC); `null`: none. */
  functions: string[] | null
  allFunctions: boolean
}

/**
 * Read from the catalog, so it works as well for a role that may not use the schema at all: that
 * role's first statement would fail with "permission denied for schema mailer", naming no grant.
 * Invariant: has_*_privilege counts PUBLIC's and inherited rights, as a statement's check does.
 */
async function readLacks(pool: pg.Pool): Promise<Lacks> {
  const { rows } = await pool.query<{
    role: string
    usage: boolean
    tables: { privilege: string; tables: string[]; all: boolean }[]
    functions: string[] | null
    all_functions: boolean
  }>(
    `with t as (
       select c.oid, c.relname from pg_class c
        where c.relnamespace = 'mailer'::regnamespace and c.relkind in ('r', 'p')),
     f as (
       -- Not trigger functions: a trigger fires without its EXECUTE right (0059's is its owner's alone).
       select p.oid, p.proname from pg_proc p
        where p.pronamespace = 'mailer'::regnamespace and p.prorettype <> 'trigger'::regtype)
     select current_user as role,
            has_schema_privilege('mailer', 'usage') as usage,
            coalesce((select json_agg(json_build_object('privilege', x.privilege, 'tables', x.tables,
                                                        'all', x.n = (select count(*) from t))
                                      order by x.ord)
                        from (select p.privilege, p.ord, count(*) as n,
                                     array_agg('mailer.' || t.relname order by t.relname) as tables
                                from t cross join unnest($1::text[]) with ordinality as p(privilege, ord)
                               where not has_table_privilege(t.oid, p.privilege)
                               group by p.privilege, p.ord) x), '[]') as tables,
            (select array_agg(distinct 'mailer.' || f.proname order by 'mailer.' || f.proname)
               from f where not has_function_privilege(f.oid, 'execute')) as functions,
            (select bool_and(not has_function_privilege(f.oid, 'execute')) from f) as all_functions`,
    [TABLE_PRIVILEGES],
  )
  const r = rows[0]!
  return {
    role: r.role,
    usage: r.usage,
    tables: Object.fromEntries(r.tables.map((x) => [x.privilege, x.all ? null : x.tables])),
    functions: r.functions,
    allFunctions: r.all_functions === true,
  }
}

/** What `role` lacks, in words; empty when nothing. */
function lackedText(l: Lacks): string[] {
  const out: string[] = []
  if (!l.usage) out.push('usage on schema mailer')
  for (const [privilege, tables] of Object.entries(l.tables)) {
    out.push(`${privilege} on ${tables ? tables.join(', ') : 'every table of schema mailer'}`)
  }
  if (l.functions) {
    out.push(
      `execute on ${l.allFunctions ? 'every function of schema mailer' : l.functions.join(', ')}`,
    )
  }
  return out
}

/**
 * A problem naming what the role of `pool` lacks and step 7's grants for it, or a check saying it
 * holds them. `where` names the database and its variable, as the other database checks do.
 */
export async function checkGrants(
  pool: pg.Pool,
  where: string,
): Promise<{ problem: string } | { check: string }> {
  const l = await readLacks(pool)
  const lacked = lackedText(l)
  if (lacked.length === 0) {
    return { check: `${where}: role ${l.role} has the grants the service needs on schema mailer` }
  }
  const grants = [
    `grant usage on schema mailer to ${l.role}`,
    `grant select, insert, update, delete on all tables in schema mailer to ${l.role}`,
    `alter default privileges in schema mailer grant select, insert, update, delete on tables to ${l.role}`,
    ...(l.functions
      ? [
          `grant execute on all functions in schema mailer to ${l.role}`,
          `alter default privileges in schema mailer grant execute on functions to ${l.role}`,
        ]
      : []),
  ]
  return {
    problem: `${where}: role ${l.role} lacks ${lacked.join('; ')}: its claims would fail (SQLSTATE 42501); ${GRANTS_ADVICE}: ${grants.join('; ')}`,
  }
}
