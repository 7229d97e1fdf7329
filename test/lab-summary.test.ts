/** test/lab/summary.ts: a lab deploy's summary tells "ran before and unchanged" from "never ran". */
import { describe, expect, test } from "vitest";
import { deploySummary } from "./lab/summary";

describe("lab deploy summary", () => {
  test("first deploy: what ran and what is only recorded", () => {
    expect(deploySummary({ wallMs: 8400, executed: 23, skipped: 28, unchangedRan: 0, neverRan: {} })).toBe(
      "deployed in 8.4 s: 23 commands ran, 28 recorded only (not executed in the lab)",
    );
  });
  test("unchanged second deploy: the 23 that ran before apart from the 28 that never ran, by component", () => {
    expect(deploySummary({ wallMs: 2100, executed: 0, skipped: 0, unchangedRan: 23, neverRan: { controlplane: 20, workers: 8 } })).toBe(
      "deployed in 2.1 s: 0 commands ran, 23 ran before and are unchanged (not run again), 28 never ran: controlplane 20, workers 8 (recorded only: not executed in the lab)",
    );
  });
});
