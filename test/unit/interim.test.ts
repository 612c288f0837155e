import { describe, expect, it } from 'vitest';
import { interimToForward } from '../../proxy/upstream/interim.js';

describe('which interim responses are forwarded (RFC 9110 §15.2)', () => {
  it('forwards 102 Processing', () => {
    expect(interimToForward(102, {})).toEqual({ kind: 'processing' });
  });

  it('forwards 103 Early Hints with their fields, but not hop-by-hop ones', () => {
    expect(interimToForward(103, { link: '</a.css>; rel=preload', 'x-hint': 'h', connection: 'x-private', 'x-private': 'p', 'keep-alive': 'timeout=5' })).toEqual({
      kind: 'early-hints',
      hints: { link: '</a.css>; rel=preload', 'x-hint': 'h' },
    });
  });

  it('drops 103 without Link, 100 Continue and 101', () => {
    expect(interimToForward(103, { 'x-hint': 'h' })).toEqual({ kind: 'drop' });
    expect(interimToForward(100, {})).toEqual({ kind: 'drop' });
    expect(interimToForward(101, { upgrade: 'websocket' })).toEqual({ kind: 'drop' });
  });
});
