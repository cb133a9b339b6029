/**
 * A JSON.parse error's message on one line: V8 quotes the text it could not parse, newlines and
 * all, and every error diffvit reports is one line.
 */
export function jsonErrorMessage(e: unknown): string {
  return (e as Error).message.replace(/\s+/g, ' ').trim();
}
