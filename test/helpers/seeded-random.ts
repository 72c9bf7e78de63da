/**
 * xorshift32: a seeded sequence, so a soak's requests can be drawn again from the seed a failing
 * run printed. random(n) is an integer in [0, n).
 */
export function seededRandom(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}
