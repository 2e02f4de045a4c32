/** protobufjs codecs for the messages of proto/shardgram.proto. */
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

export interface Probe {
  sender: number;
  seq: number;
  sentAt: number;
  pad?: Uint8Array;
}

/** Path of the schema, shipped with the package. */
export const PROTO_PATH = fileURLToPath(new URL('../../proto/shardgram.proto', import.meta.url));

let types: { snapshot: protobuf.Type; probe: protobuf.Type } | undefined;

function load(): { snapshot: protobuf.Type; probe: protobuf.Type } {
  if (!types) {
    const root = protobuf.loadSync(PROTO_PATH);
    const snapshot = root.lookupType('shardgram.WorkerSnapshot');
    // The counter fields come from the one counter list.
    for (const c of PROCESS_COUNTERS) snapshot.add(new protobuf.Field(c.key, c.wire, 'double'));
    types = { snapshot, probe: root.lookupType('shardgram.Probe') };
  }
  return types;
}

const decodeOptions = { defaults: true, longs: Number, bytes: Buffer } as const;

export function encodeSnapshot(s: WorkerSnapshot): Uint8Array {
  const t = load().snapshot;
  return t.encode(t.fromObject(s)).finish();
}

export function decodeSnapshot(bytes: Uint8Array): WorkerSnapshot {
  const t = load().snapshot;
  const snap = t.toObject(t.decode(bytes), decodeOptions) as WorkerSnapshot & { topSenders?: TopSendersReport | null };
  // An absent message decodes as null with `defaults`: leave it out, as it was sent.
  if (snap.topSenders == null) delete snap.topSenders;
  return snap;
}

export function encodeProbe(p: Probe): Uint8Array {
  const t = load().probe;
  return t.encode(t.fromObject(p)).finish();
}

export function decodeProbe(bytes: Uint8Array): Probe {
  const t = load().probe;
  return t.toObject(t.decode(bytes), decodeOptions) as Probe;
}
