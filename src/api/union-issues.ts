// Which of a zod union's issues a validation problem names: the branch that got furthest into the value.
type Issue = {
  path: PropertyKey[]
  message: string
  code?: string
  errors?: Issue[][]
  params?: Record<string, unknown>
}

/**
 * A union's issue said as the branch that got furthest into the value ({"address", "name": 5}: the
 * object's name, not the string's type), each issue under the union's path; its own message (what
 * the value must be) when no branch got past the value itself.
 */
export function closest(issue: Issue, prefix: PropertyKey[]): Issue[] {
  const path = [...prefix, ...issue.path]
  if (issue.code === 'invalid_union' && issue.errors?.length) {
    const best = issue.errors.reduce((a, b) => (reach(b) > reach(a) ? b : a))
    if (reach(best) > 0) return best.flatMap((i) => closest(i, path))
  }
  return [{ ...issue, path }]
}

/** How far into the value a branch's issues got, through the unions nested in it. */
function reach(branch: Issue[]): number {
  return Math.max(
    ...branch.map(
      (i) =>
        i.path.length +
        (i.code === 'invalid_union' && i.errors?.length ? Math.max(...i.errors.map(reach)) : 0),
    ),
  )
}
