import { describe, expect, it } from 'vitest';
import { chiSquareSurvival, fairness } from '@shardgram/udp-core/stats';

describe('fairness figures', () => {
  it("computes Jain's index (Σx)²/(N·Σx²)", () => {
    expect(fairness([10, 10, 10, 10]).jain).toBe(1);
    expect(fairness([40, 0, 0, 0]).jain).toBe(0.25);
    expect(fairness([1, 2, 3]).jain).toBeCloseTo(36 / (3 * 14), 12);
  });

  it('gives min and max share', () => {
    const f = fairness([10, 30, 60]);
    expect(f.minShare).toBeCloseTo(0.1, 12);
    expect(f.maxShare).toBeCloseTo(0.6, 12);
  });

  it('matches chi-square tables at the usual critical values', () => {
    // Critical values of the chi-square distribution (any statistics table).
    expect(chiSquareSurvival(3.841, 1)).toBeCloseTo(0.05, 3);
    expect(chiSquareSurvival(5.991, 2)).toBeCloseTo(0.05, 3);
    expect(chiSquareSurvival(7.815, 3)).toBeCloseTo(0.05, 3);
    expect(chiSquareSurvival(11.345, 3)).toBeCloseTo(0.01, 3);
    expect(chiSquareSurvival(0, 3)).toBe(1);
    expect(chiSquareSurvival(124.342, 100)).toBeCloseTo(0.05, 3);
  });

  it('tests a split against even', () => {
    expect(fairness([100, 100, 100]).chiSquareP).toBe(1);
    // 110/90 on 1 df: statistic 2, p = 0.157
    expect(fairness([110, 90]).chiSquareP).toBeCloseTo(0.1573, 3);
    expect(fairness([300, 0, 0]).chiSquareP).toBeLessThan(1e-100);
  });

  it('is defined when nothing was received', () => {
    expect(fairness([0, 0])).toMatchObject({ jain: 1, chiSquareP: 1, minShare: 0, maxShare: 0 });
  });
});
