/**
 * Measuring etcd from the outside, the way kube-apiserver sees it: a gRPC client (grpc-js, one
 * kept-alive mutual-TLS HTTP/2 connection to one member) that writes on a fixed schedule
 * (open loop: a write is sent every `intervalMs` whether or not the previous one returned, each
 * with its own deadline) and reads each member's raft status. Used by the failover benchmark
 * (`npm run bench:etcd`) and the real-etcd leader-kill test.
 *
 * The two etcd messages needed are encoded by hand (protobuf): KV.Put and Maintenance.Status.
 */
import * as grpc from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import { pbBytes, pbFields, type PbField } from "../harness/protobuf";

export interface ClientTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface MemberStatus {
  memberId: bigint;
  leader: bigint;
  raftTerm: bigint;
  raftIndex: bigint;
  version: string;
}

/** Milliseconds on a monotonic clock. */
export const now = () => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class EtcdGrpc {
  private readonly client: grpc.Client;
  constructor(
    readonly endpoint: string,
    tls: ClientTls,
    serverName = "localhost",
  ) {
    const u = new URL(endpoint);
    const creds = grpc.credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem));
    // the certificate is checked against its DNS SAN `localhost` (hakube's server certificates and
    // the bench's carry it): Node refuses an IP address as TLS server name (RFC 6066)
    this.client = new grpc.Client(`${u.hostname}:${u.port}`, creds, {
      "grpc.ssl_target_name_override": serverName,
      "grpc.default_authority": serverName,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 500,
    });
  }
  private call(method: string, req: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(
        method,
        (b: Buffer) => b,
        (b: Buffer) => b,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(new Error(`${method}: ${err.message}`)) : resolve(res!)),
      ),
    );
  }
  async put(key: string, value: string, timeoutMs = 2000): Promise<void> {
    await this.call("/etcdserverpb.KV/Put", Buffer.concat([pbBytes(1, key), pbBytes(2, value)]), timeoutMs);
  }
  async status(timeoutMs = 1000): Promise<MemberStatus> {
    const res = pbFields(await this.call("/etcdserverpb.Maintenance/Status", Buffer.alloc(0), timeoutMs));
    const header = pbFields(res.find((f) => f.field === 1)?.data ?? Buffer.alloc(0));
    const num = (fs: PbField[], n: number) => fs.find((f) => f.field === n)?.varint ?? 0n;
    return {
      memberId: num(header, 2),
      leader: num(res, 4),
      raftIndex: num(res, 5),
      raftTerm: num(res, 6),
      version: res.find((f) => f.field === 2)?.data?.toString("utf8") ?? "",
    };
  }
  close(): void {
    this.client.close();
  }
}

export interface WriteSample {
  /** when the write was sent / when it returned (ms, `now()`) */
  sent: number;
  done: number;
  ok: boolean;
}

/** Writes `/hakube-bench/<n>` every `intervalMs` (open loop) until `stop()`; keeps every sample. */
export class Writer {
  readonly samples: WriteSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;
  private readonly pending = new Set<Promise<void>>();
  constructor(
    client: EtcdGrpc,
    readonly intervalMs: number,
    timeoutMs = 2000,
  ) {
    let n = 0;
    this.loop = (async () => {
      let next = now();
      while (this.running) {
        const sent = now();
        const p = client
          .put(`/hakube-bench/${n++ % 1000}`, String(sent), timeoutMs)
          .then(
            () => void this.samples.push({ sent, done: now(), ok: true }),
            () => void this.samples.push({ sent, done: now(), ok: false }),
          )
          .finally(() => this.pending.delete(p));
        this.pending.add(p);
        next += intervalMs;
        await sleep(Math.max(0, next - now()));
      }
    })();
  }
  /** Stop sending; wait for the writes in flight (each ends by its deadline). */
  async stop(): Promise<WriteSample[]> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.pending]);
    return this.samples;
  }
  okSince(t: number): WriteSample | undefined {
    return this.samples.find((s) => s.ok && s.sent >= t);
  }
}

export interface GapReport {
  /** longest time between two consecutive successful writes (by completion) around the fault */
  longestGapMs: number;
  /** from the fault to the completion of the first successful write sent after it */
  firstWriteAfterMs: number;
  /** writes that failed (deadline or error) */
  failed: number;
  sent: number;
}

/**
 * Unavailability around a fault at `faultAt`: the longest interval without a successful write
 * (consecutive successful completions, the first one before the fault), and the time from the
 * fault to the first successful write that was sent after it.
 */
export function analyzeGap(samples: WriteSample[], faultAt: number): GapReport {
  const ok = samples.filter((s) => s.ok).map((s) => s.done).sort((a, b) => a - b);
  const before = ok.filter((t) => t <= faultAt);
  const from = before.length ? before[before.length - 1] : faultAt;
  let longest = 0;
  let prev = from;
  for (const t of ok.filter((x) => x > from)) {
    longest = Math.max(longest, t - prev);
    prev = t;
  }
  const first = samples.filter((s) => s.ok && s.sent >= faultAt).sort((a, b) => a.done - b.done)[0];
  return {
    longestGapMs: Math.round(longest),
    firstWriteAfterMs: first ? Math.round(first.done - faultAt) : NaN,
    failed: samples.filter((s) => !s.ok).length,
    sent: samples.length,
  };
}

/** Largest interval without a successful completion over the whole run (no fault), and the slowest write. */
export function steadyStats(samples: WriteSample[]): { longestGapMs: number; maxLatencyMs: number; failed: number; sent: number } {
  const ok = samples.filter((s) => s.ok).map((s) => s.done).sort((a, b) => a - b);
  let longest = 0;
  for (let i = 1; i < ok.length; i++) longest = Math.max(longest, ok[i] - ok[i - 1]);
  return {
    longestGapMs: Math.round(longest),
    maxLatencyMs: Math.round(Math.max(0, ...samples.filter((s) => s.ok).map((s) => s.done - s.sent))),
    failed: samples.filter((s) => !s.ok).length,
    sent: samples.length,
  };
}

