// An OpenAPI response whose body is JSON of the given schema (problem+json answers use problemResponse).
export const jsonResponse = <T>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})
