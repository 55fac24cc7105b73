// The fake Graph's sendMail body rules: the schema extract (ajv, 2020-12) plus what Graph checks beyond it.
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import schema from './graph-sendmail-schema.json'

const MAX_RECIPIENTS = 500
const ajv = new Ajv2020({ strict: false, allErrors: true })
addFormats(ajv)
const validateBody = ajv.compile(schema)
const messageProperties = new Set(
  Object.keys(schema.$defs['microsoft.graph.message'].properties as Record<string, unknown>),
)
const ADDRESS = /^[^\s@<>()",;:]+@[^\s@<>()",;:]+\.[^\s@<>()",;:]+$/

/** Graph's answer to a body it refuses (always a 400), or null when it would accept it. */
export function sendMailBodyError(body: unknown): { code: string; message: string } | null {
  if (!validateBody(body)) {
    return {
      code: 'BadRequest',
      message: `Invalid sendMail body: ${ajv.errorsText(validateBody.errors)}`,
    }
  }
  const b = body as Record<string, unknown>
  return messageProblem((b.message ?? b.Message) as Record<string, unknown>)
}

/** The same check for unit tests, for unit tests: schema errors plus Graph's own rules; [] when valid. */
export function sendMailBodyProblems(body: unknown): string[] {
  if (!validateBody(body))
    return (validateBody.errors ?? []).map((e) => `${e.instancePath} ${e.message}`)
  const b = body as Record<string, unknown>
  const problem = messageProblem((b.message ?? b.Message) as Record<string, unknown>)
  return problem ? [`${problem.code}: ${problem.message}`] : []
}

/** What Graph checks beyond the schema (graph.md §2): recipients, x- headers, unknown properties, base64. */
function messageProblem(
  message: Record<string, unknown>,
): { code: string; message: string } | null {
  for (const key of Object.keys(message)) {
    if (!messageProperties.has(key)) {
      return {
        code: 'RequestBodyRead',
        message: `The property '${key}' does not exist on type 'microsoft.graph.message'.`,
      }
    }
  }
  const unknown = unknownNestedProperty(message, 'microsoft.graph.message')
  if (unknown) {
    return {
      code: 'RequestBodyRead',
      message: `The property '${unknown.key}' does not exist on type '${unknown.type}'.`,
    }
  }
  type R = { emailAddress?: { address?: string } }
  const recipients = ['toRecipients', 'ccRecipients', 'bccRecipients'].flatMap(
    (k) => (message[k] ?? []) as R[],
  )
  if (recipients.length === 0)
    return {
      code: 'ErrorInvalidRecipients',
      message: "A message can't be sent because it contains no recipients.",
    }
  if (recipients.length > MAX_RECIPIENTS)
    return { code: 'ErrorInvalidRecipients', message: 'Too many recipients.' }
  const replyTo = (message.replyTo ?? []) as R[]
  if ([...recipients, ...replyTo].some((r) => !ADDRESS.test(r.emailAddress?.address ?? ''))) {
    return { code: 'ErrorInvalidRecipients', message: "At least one recipient isn't valid." }
  }
  const headers = message.internetMessageHeaders as { name: string }[] | undefined
  if (headers !== undefined) {
    if (headers.length === 0 || headers.length > 5) {
      return {
        code: 'InvalidInternetMessageHeaderCollection',
        message:
          'The number of internet message headers should be greater than 0 and less than or equal to 5.',
      }
    }
    const bad = headers.find((h) => !/^x-/i.test(h.name))
    if (bad)
      return {
        code: 'InvalidInternetMessageHeader',
        message: `The internet message header name '${bad.name}' should start with 'x-' or 'X-'.`,
      }
  }
  type Attachment = { '@odata.type'?: string; contentBytes?: string | null }
  for (const a of (message.attachments ?? []) as Attachment[]) {
    // Required of a fileAttachment (fileattachment doc; msgraph-sdk-python#667's 400 without it);
    // "" is present: zero bytes, which Graph's schema takes.
    const file = a['@odata.type'] === '#microsoft.graph.fileAttachment'
    if (file && (a.contentBytes === undefined || a.contentBytes === null))
      return { code: 'ErrorRequiredPropertyMissing', message: 'Required property is missing.' }
    // .NET's decoder: whole groups of four, padded (an unpadded or 4n+1 length is refused).
    if (
      a.contentBytes &&
      (!/^[A-Za-z0-9+/]*={0,2}$/.test(a.contentBytes) || a.contentBytes.length % 4 !== 0)
    ) {
      return {
        code: 'ErrorInvalidRequest',
        message: 'Invalid base64 string for attachment content.',
      }
    }
  }
  return null
}

interface PropertySchema {
  $ref?: string
  anyOf?: PropertySchema[]
  oneOf?: PropertySchema[]
  items?: PropertySchema
}
interface TypeSchema {
  properties?: Record<string, PropertySchema & { const?: string }>
  'x-openType'?: boolean
}
const types = schema.$defs as unknown as Record<string, TypeSchema>

/**
 * The schema extract lets any object carry more properties (additionalProperties), but Graph
 * refuses one that a type which is not open (x-openType false) does not declare: walks the
 * message's values down its declared types. `@odata.*` annotations are no properties.
 */
function unknownNestedProperty(value: unknown, type: string): { type: string; key: string } | null {
  const def = types[type]
  if (!def?.properties || value === null || typeof value !== 'object') return null
  const entries = Object.entries(value as Record<string, unknown>)
  if (def['x-openType'] === false) {
    const key = entries.find(([k]) => !k.startsWith('@odata.') && !(k in def.properties!))?.[0]
    if (key !== undefined) return { type, key }
  }
  for (const [k, v] of entries) {
    const prop = def.properties[k]
    if (!prop) continue
    for (const item of Array.isArray(v) ? v : [v]) {
      const found = typeOf(Array.isArray(v) ? (prop.items ?? {}) : prop, item)
      const problem = found ? unknownNestedProperty(item, found) : null
      if (problem) return problem
    }
  }
  return null
}

/** The declared type a value takes: its one $ref, or among several the one its @odata.type names. */
function typeOf(prop: PropertySchema, value: unknown): string | null {
  const refs = [prop, ...(prop.anyOf ?? []), ...(prop.oneOf ?? [])]
    .map((p) => p.$ref?.replace('#/$defs/', ''))
    .filter((r): r is string => r !== undefined)
  if (refs.length <= 1) return refs[0] ?? null
  const named = (value as Record<string, unknown> | null)?.['@odata.type']
  return refs.find((r) => types[r]?.properties?.['@odata.type']?.const === named) ?? null
}
