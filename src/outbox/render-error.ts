// Why a claimed row cannot become a mail: a code the row fails with permanently, and a message naming the field.

export class RenderError extends Error {
  constructor(
    readonly code: 'template_error' | 'template_not_found' | 'invalid_message' | 'no_sender',
    message: string,
  ) {
    super(message)
  }
}
