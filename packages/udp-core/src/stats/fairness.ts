/**
 * How evenly a group shared the traffic: each worker's share, Jain's fairness index
 * (Σx)²/(N·Σx²), the smallest and largest share, and the p-value of a chi-square
 * goodness-of-fit test against an even split.
 */

export interface Fairness {
  /** 1 = perfectly even, 1/N = everything on one worker. NaN-free: 1 when nothing was received. */
  jain: number;
  minShare: number;
  maxShare: number;
  /** Pearson's chi-square statistic against an even split. */
  chiSquare: number;
  /** Probability of a split at least this uneven if the kernel spread evenly at random. */
  chiSquareP: number;
  /** Degrees of freedom (N - 1). */
  degreesOfFreedom: number;
}

// ln Γ(x), Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (x < a + 1) {
    // Series for P(a, x), then Q = 1 - P.
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * Math.exp(-x + a * Math.log(x) - logGamma(a)));
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.min(1, Math.exp(-x + a * Math.log(x) - logGamma(a)) * h);
}

/** Upper tail of the chi-square distribution: P(X ≥ stat) with `df` degrees of freedom. */
export function chiSquareSurvival(stat: number, df: number): number {
  if (df <= 0) return 1;
  return gammaQ(df / 2, stat / 2);
}

export function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total > 0 ? c / total : 0));
}

export function fairness(counts: readonly number[]): Fairness {
  const n = counts.length;
  const total = counts.reduce((a, b) => a + b, 0);
  if (n === 0 || total === 0) {
    return { jain: 1, minShare: 0, maxShare: 0, chiSquare: 0, chiSquareP: 1, degreesOfFreedom: Math.max(0, n - 1) };
  }
  const sumSq = counts.reduce((a, b) => a + b * b, 0);
  const expected = total / n;
  const chiSquare = counts.reduce((a, b) => a + (b - expected) ** 2 / expected, 0);
  const s = shares(counts);
  return {
    jain: (total * total) / (n * sumSq),
    minShare: Math.min(...s),
    maxShare: Math.max(...s),
    chiSquare,
    chiSquareP: chiSquareSurvival(chiSquare, n - 1),
    degreesOfFreedom: n - 1,
  };
}
