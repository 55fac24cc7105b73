// Type of `import x from '*.sql' with { type: 'text' }`: Bun embeds the file's text.
declare module '*.sql' {
  const text: string
  export default text
}
