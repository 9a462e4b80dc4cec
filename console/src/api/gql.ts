/**
 * Marks a GraphQL document. The text is the document: `check-documents.mjs` finds every
 * gql-tagged template in src/ and validates it against the server's schema, so a document
 * never interpolates.
 */
export function gql(strings: TemplateStringsArray): string {
  return strings.join('');
}
