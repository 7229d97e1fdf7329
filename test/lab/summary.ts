/**
 * The one-line summary of a lab deploy (pure; test/lab-summary.test.ts). Commands that did not
 * run this time are told apart: "unchanged" only for those that ran on these hosts before with
 * the same inputs; commands of components the lab does not execute never ran, and say so.
 */
export interface DeployCounts {
  wallMs: number;
  /** commands run over SSH this time */
  executed: number;
  /** commands recorded only this time (their component is not executed in the lab) */
  skipped: number;
  /** not run this time: same inputs as when they ran on these hosts */
  unchangedRan: number;
  /** not run this time and never run on these hosts (recorded only, before and now), by component */
  neverRan: Record<string, number>;
}

export function deploySummary(c: DeployCounts): string {
  const parts: string[] = [];
  const never = Object.entries(c.neverRan).filter(([, n]) => n > 0);
  const neverTotal = never.reduce((a, [, n]) => a + n, 0);
  parts.push(`${c.executed} command${c.executed === 1 ? "" : "s"} ran`);
  if (c.skipped) parts.push(`${c.skipped} recorded only (not executed in the lab)`);
  if (c.unchangedRan) parts.push(`${c.unchangedRan} ran before and are unchanged (not run again)`);
  if (neverTotal) parts.push(`${neverTotal} never ran: ${never.map(([k, n]) => `${k} ${n}`).join(", ")} (recorded only: not executed in the lab)`);
  return `deployed in ${(c.wallMs / 1000).toFixed(1)} s: ${parts.join(", ")}`;
}
