/** @shardgram/udp-core/load — bounded load against an echo service: probes, the echo reply format, the native sender. */
export { runLoad } from '../load.js';
export type { LoadOptions, LoadReport, LoadProgress, LoadSender, WorkerLoadStats } from '../load.js';
export { echoPrefix, parseEchoReply } from '../apps/echo-format.js';
export type { EchoReply } from '../apps/echo-format.js';
export { encodeProbe, decodeProbe } from '../snapshot.js';
export type { Probe } from '../snapshot.js';
export { NativeSender, probePad } from '../sender.js';
export type { NativeSenderOptions, SendProbesOptions, SendProbesResult } from '../sender.js';
