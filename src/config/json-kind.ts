// What kind of JSON value a value is, as a refusal names what was given ("not an array"): one wording for a variable's JSON and a request's body.

/** null, an array, an object, a boolean, a string, a number (what JSON.parse can give). */
export const jsonKind = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'object'
        ? 'an object'
        : typeof v === 'boolean'
          ? 'a boolean'
          : `a ${typeof v}`
