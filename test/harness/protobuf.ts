/**
 * The few bits of protobuf the test clients need (etcd's gRPC API without generated code):
 * writing varints and length-delimited fields, reading a message's fields.
 */

export function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
/** A length-delimited protobuf field. */
export function pbBytes(field: number, s: string): Buffer {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([varint((field << 3) | 2), varint(b.length), b]);
}
export interface PbField {
  field: number;
  data?: Buffer;
  varint?: bigint;
}
/** A message's fields: varints as bigint, length-delimited ones as bytes (fixed-width ones skipped). */
export function pbFields(buf: Buffer): PbField[] {
  const out: PbField[] = [];
  let i = 0;
  const read = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      v |= BigInt(b & 127) << shift;
      if (b < 128) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(read());
    const wire = tag & 7;
    const field = tag >>> 3;
    if (wire === 0) out.push({ field, varint: read() });
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = Number(read());
      out.push({ field, data: buf.subarray(i, i + len) });
      i += len;
    } else throw new Error(`protobuf: wire type ${wire} not supported`);
  }
  return out;
}

/** Only the length-delimited fields of a message. */
export function pbBytesFields(buf: Buffer): { field: number; data: Buffer }[] {
  return pbFields(buf).filter((f): f is { field: number; data: Buffer } => f.data !== undefined);
}
