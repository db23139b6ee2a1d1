// Kubernetes resource quantities ("500m", "0.5", "1Gi", "1024Mi", "1e3", 2) compared by value: the
// API server stores them in canonical form ("0.5" comes back as "500m", "1024Mi" as "1Gi"), so
// two spellings of one amount must count as equal.

/** An exact rational value: num / den. */
interface Ratio {
  num: bigint;
  den: bigint;
}

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE]))?$/;
const BINARY: Record<string, bigint> = { Ki: 1n, Mi: 2n, Gi: 3n, Ti: 4n, Pi: 5n, Ei: 6n };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

function scale(r: Ratio, exp10: number): Ratio {
  const p = 10n ** BigInt(Math.abs(exp10));
  return exp10 >= 0 ? { num: r.num * p, den: r.den } : { num: r.num, den: r.den * p };
}

/** The value of a quantity, or undefined when it is not one. */
export function parseQuantity(q: unknown): Ratio | undefined {
  if (typeof q === "number") q = Number.isFinite(q) ? String(q) : "";
  if (typeof q !== "string") return undefined;
  const m = QUANTITY.exec(q.trim());
  if (!m) return undefined;
  const [, sign, digits, exponent, binary, decimal] = m;
  const [whole, fraction = ""] = digits.split(".");
  let r: Ratio = { num: BigInt(`${whole || "0"}${fraction}`), den: 10n ** BigInt(fraction.length) };
  if (sign === "-") r.num = -r.num;
  // Exponents beyond what any real quantity uses are refused rather than turned into huge numbers.
  if (exponent !== undefined) {
    const e = Number(exponent.slice(1));
    if (Math.abs(e) > 100) return undefined;
    r = scale(r, e);
  }
  if (binary !== undefined) r = { num: r.num * 1024n ** BINARY[binary], den: r.den };
  if (decimal !== undefined) r = scale(r, DECIMAL[decimal]);
  return r;
}

/** Whether two quantities are the same amount (false when either is not a quantity). */
export function sameQuantity(a: unknown, b: unknown): boolean {
  const x = parseQuantity(a);
  const y = parseQuantity(b);
  return x !== undefined && y !== undefined && x.num * y.den === y.num * x.den;
}
