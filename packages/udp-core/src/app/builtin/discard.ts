/** `discard`: receives and counts, replies nothing (RFC 863's UDP twin). */
import { defineApp } from '../shard-socket.js';

export default defineApp((socket) => {
  socket.on('message', () => {
    // Counting is done by the engine; nothing else to do.
  });
});

export const description = 'receive and count only';
