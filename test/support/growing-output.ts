// A running child's output, readable as it grows: a test waits on a line with pollUntil while the child runs.

export interface GrowingOutput {
  /** What has been printed so far. */
  text(): string
  /** Resolves once the stream has ended (the child closed it, or exited). */
  ended: Promise<void>
}

export function growingOutput(stream: ReadableStream<Uint8Array>): GrowingOutput {
  let text = ''
  const decoder = new TextDecoder()
  const ended = (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true })
  })()
  return { text: () => text, ended }
}
