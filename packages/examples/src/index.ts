/** Example apps built on @shardgram/udp-core. Each is also importable on its own. */
export { default as echo } from './echo.js';
