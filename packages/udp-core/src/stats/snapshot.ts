/** The schema of proto/shardgram.proto (protobufjs), and the codec of a worker's snapshot. */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { PROCESS_COUNTERS, type ProcessCounters } from './counters.js';
import type { TopSendersReport } from './top-senders.js';

/** What a worker process reports besides its shared page: who it is, and its `process` counters. */
export interface WorkerSnapshot extends ProcessCounters {
  index: number;
  pid: number;
  seq: number;
  final: boolean;
  engine: string;
  /** The engine's top senders (absent when the engine keeps none). */
  topSenders?: TopSendersReport;
}

/** Path of the schema, shipped with the package. */
export const PROTO_PATH = fileURLToPath(new URL('../../proto/shardgram.proto', import.meta.url));

let root: protobuf.Root | undefined;

/** The schema, loaded once: the worker snapshot here, the load tool's probe (load/probe.ts) from the same root. */
export function protoRoot(): protobuf.Root {
  root ??= protobuf.loadSync(PROTO_PATH);
  return root;
}

let snapshotType: protobuf.Type | undefined;

function snapshotMessage(): protobuf.Type {
  if (!snapshotType) {
    const t = protoRoot().lookupType('shardgram.WorkerSnapshot');
    // The counter fields come from the one counter list.
    for (const c of PROCESS_COUNTERS) t.add(new protobuf.Field(c.key, c.wire, 'double'));
    snapshotType = t;
  }
  return snapshotType;
}

/** How a message is decoded: absent fields at their defaults, 64-bit numbers as numbers, bytes as Buffers. */
export const DECODE_OPTIONS = { defaults: true, longs: Number, bytes: Buffer } as const;

export function encodeSnapshot(s: WorkerSnapshot): Uint8Array {
  const t = snapshotMessage();
  return t.encode(t.fromObject(s)).finish();
}

export function decodeSnapshot(bytes: Uint8Array): WorkerSnapshot {
  const t = snapshotMessage();
  const snap = t.toObject(t.decode(bytes), DECODE_OPTIONS) as WorkerSnapshot & { topSenders?: TopSendersReport | null };
  // An absent message decodes as null with `defaults`: leave it out, as it was sent.
  if (snap.topSenders == null) delete snap.topSenders;
  return snap;
}
