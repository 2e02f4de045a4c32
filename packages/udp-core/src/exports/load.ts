/** @shardgram/udp-core/load — bounded load against an echo service: probes, the echo reply format, the native sender. */
export { runLoad } from '../load/load.js';
export type { LoadOptions, LoadReport, LoadProgress, LoadSender, WorkerLoadStats } from '../load/load.js';
export { echoPrefix, parseEchoReply } from '../app/builtin/echo-format.js';
export type { EchoReply } from '../app/builtin/echo-format.js';
export { encodeProbe, decodeProbe } from '../load/probe.js';
export type { Probe } from '../load/probe.js';
export { NativeSender, probePad } from '../load/sender.js';
export type { NativeSenderOptions, SendProbesOptions, SendProbesResult } from '../load/sender.js';
