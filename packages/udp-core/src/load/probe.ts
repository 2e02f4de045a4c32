/**
 * The load tool's probe: the datagram `shardgram load` sends and reads back from the
 * echo app (proto/shardgram.proto, message Probe). Only the load tool uses it; its
 * schema is the package's one (stats/snapshot.ts loads it once).
 */
import type protobuf from 'protobufjs';
import { DECODE_OPTIONS, protoRoot } from '../stats/snapshot.js';

export interface Probe {
  sender: number;
  seq: number;
  sentAt: number;
  pad?: Uint8Array;
}

let probeType: protobuf.Type | undefined;

function probeMessage(): protobuf.Type {
  probeType ??= protoRoot().lookupType('shardgram.Probe');
  return probeType;
}

export function encodeProbe(p: Probe): Uint8Array {
  const t = probeMessage();
  return t.encode(t.fromObject(p)).finish();
}

export function decodeProbe(bytes: Uint8Array): Probe {
  const t = probeMessage();
  return t.toObject(t.decode(bytes), DECODE_OPTIONS) as Probe;
}
