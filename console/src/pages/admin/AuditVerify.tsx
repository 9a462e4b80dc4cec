/** "Verify chain" waits for the server's `verifyAuditChain` query. */
export function VerifyChain() {
  return null;
}
