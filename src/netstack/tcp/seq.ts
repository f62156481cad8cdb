/**
 * Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4): comparisons are
 * on the signed 32-bit difference, valid while the two numbers are less than
 * 2^31 apart, which the window sizes guarantee.
 */
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
/** a - b as a signed distance. */
export const seqDiff = (a: number, b: number): number => (a - b) | 0;
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;
export const seqMax = (a: number, b: number): number => (((a - b) | 0) >= 0 ? a : b);
export const seqMin = (a: number, b: number): number => (((a - b) | 0) <= 0 ? a : b);
