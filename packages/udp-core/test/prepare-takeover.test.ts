/** `serve --takeover`'s first word finds the running service's control socket from the same arguments `serve` reads. */
import { describe, expect, it } from 'vitest';
import { controlPathOf } from '../src/cli/prepare-takeover.js';
import { defaultControlPath } from '../src/control/paths.js';

describe('the control socket a takeover prepares', () => {
  it('is the default path for the address and port given, in every spelling serve accepts', () => {
    const at = (address: string, port: number) => defaultControlPath(address, port);
    expect(controlPathOf(['echo', '--port', '9000', '--takeover'])).toBe(at('127.0.0.1', 9000));
    expect(controlPathOf(['echo', '-p', '9000', '--workers', '4', '--takeover'])).toBe(at('127.0.0.1', 9000));
    expect(controlPathOf(['echo', '--port=9000', '--address', '::1', '--takeover'])).toBe(at('::1', 9000));
    expect(controlPathOf(['statsd', '--takeover', '-a', '10.0.0.1', '-p', '8125', '--app-option', 'x=1'])).toBe(at('10.0.0.1', 8125));
  });

  it('is the --control path when one is given', () => {
    expect(controlPathOf(['echo', '--port', '9000', '--control', '/somewhere/ctl.sock', '--takeover'])).toBe('/somewhere/ctl.sock');
    expect(controlPathOf(['echo', '-c', 'rel.sock', '--takeover'])).toBe('rel.sock');
  });

  it('is unknown (nothing is sent) without a usable port', () => {
    expect(controlPathOf(['echo', '--takeover'])).toBeUndefined();
    expect(controlPathOf(['echo', '--port', 'lots', '--takeover'])).toBeUndefined();
    expect(controlPathOf(['echo', '--port', '0', '--takeover'])).toBeUndefined();
    expect(controlPathOf(['echo', '--port', '70000', '--takeover'])).toBeUndefined();
  });
});
