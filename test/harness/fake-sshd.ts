/**
 * A tiny in-process SSH server (ssh2) for unit tests of the SSH executor: public-key auth for
 * one key, `exec` runs `sh -c` locally with the channel as stdin. The lab uses real sshd.
 */
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import { Server, utils as sshUtils } from "ssh2";

export interface FakeSshd {
  port: number;
  /** the server's public host key as an OpenSSH line */
  hostKeyLine: string;
  commands: string[];
  close(): Promise<void>;
}

export function generateClientKey(): string {
  const { privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  return String(privateKey.export({ type: "sec1", format: "pem" }));
}

export async function startFakeSshd(authorizedKeyPem: string): Promise<FakeSshd> {
  const hostKeyPem = String(crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }));
  const parsedHost = sshUtils.parseKey(hostKeyPem);
  if (parsedHost instanceof Error) throw parsedHost;
  const hostKeyLine = `${parsedHost.type} ${parsedHost.getPublicSSH().toString("base64")}`;
  const authorized = sshUtils.parseKey(authorizedKeyPem);
  if (authorized instanceof Error) throw authorized;
  const commands: string[] = [];
  const srv = new Server({ hostKeys: [hostKeyPem] }, (client) => {
    client
      .on("authentication", (ctx) => {
        if (ctx.method === "publickey" && ctx.key.data.equals(authorized.getPublicSSH())) {
          if (!ctx.signature) return ctx.accept();
          return authorized.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject();
        }
        ctx.reject(["publickey"]);
      })
      .on("ready", () => {
        client.on("session", (accept) => {
          const session = accept();
          session.on("exec", (acceptExec, _reject, info) => {
            const ch = acceptExec();
            commands.push(info.command);
            const p = spawn("sh", ["-c", info.command], { env: { PATH: process.env.PATH! } });
            ch.pipe(p.stdin);
            p.stdout.pipe(ch, { end: false });
            p.stderr.pipe(ch.stderr, { end: false });
            p.on("close", (code) => {
              ch.exit(code ?? 1);
              ch.end();
            });
          });
        });
      })
      .on("error", () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  return { port, hostKeyLine, commands, close: () => new Promise<void>((r) => srv.close(() => r())) };
}
