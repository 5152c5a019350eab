// Seeded random mutation for bounded fuzz tests: the same seed gives the same inputs, so a failure prints
// the seed and iteration that reproduce it (FUZZ_SEED=<n> reruns that stream).

/** mulberry32: small, fast, good enough to pick mutations. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fuzzSeed(): number {
  const s = process.env.FUZZ_SEED;
  return s !== undefined && s !== '' ? Number(s) : 0x6b6470;
}

export const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** Values that break parsers: wrong types, edge numbers, hostile strings (injection, traversal, control bytes). */
export const EVIL_VALUES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  65536,
  2 ** 53,
  -(2 ** 31),
  '',
  ' ',
  'None',
  '0',
  '-1',
  '80',
  'x'.repeat(300),
  'a; flush ruleset',
  'a" ; drop',
  "a' }",
  'a\nadd rule ip filter input drop',
  '$(reboot)',
  '../../../etc/passwd',
  '\u0000',
  '\u202e\u00e9\u{1f600}',
  '10.0.0.1 ; x',
  '999.1.1.1',
  '10.0.0.0/33',
  '::ffff:10.0.0.1',
  'fe80::1%eth0',
  '*.',
  'UPPER.Case',
  'a..b',
  '-a-',
  [],
  [null],
  [1, 'x', {}],
  {},
  { a: null },
  { '': '' },
];

type Json = unknown;

function paths(v: Json, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

/** A deep copy of `base` with 1-3 random mutations: a value replaced, a key deleted, a list element duplicated. */
export function mutate(r: () => number, base: Json): { value: Json; log: string[] } {
  let value = structuredClone(base);
  const log: string[] = [];
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const all = paths(value);
    const path = pick(r, all);
    const op = r();
    if (path.length === 0) {
      value = pick(r, EVIL_VALUES);
      log.push(`root = ${JSON.stringify(value)}`);
      continue;
    }
    const parent = path.slice(0, -1).reduce<Json>((o, k) => (o as Record<string | number, Json>)[k], value) as Record<
      string | number,
      Json
    >;
    const key = path[path.length - 1]!;
    if (op < 0.7) {
      const evil = pick(r, EVIL_VALUES);
      parent[key] = structuredClone(evil);
      log.push(`${path.join('.')} = ${JSON.stringify(evil)}`);
    } else if (op < 0.85 && !Array.isArray(parent)) {
      delete parent[key];
      log.push(`delete ${path.join('.')}`);
    } else if (Array.isArray(parent)) {
      parent.push(structuredClone(parent[key as number]));
      log.push(`duplicate ${path.join('.')}`);
    } else {
      parent[key] = [parent[key]];
      log.push(`${path.join('.')} wrapped in a list`);
    }
  }
  return { value, log };
}

/** Every string leaf of a value with its path. */
export function stringLeaves(v: unknown, prefix = ''): [string, string][] {
  if (typeof v === 'string') return [[prefix, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => stringLeaves(x, `${prefix}[${i}]`));
  if (v !== null && typeof v === 'object')
    return Object.entries(v).flatMap(([k, x]) => stringLeaves(x, prefix ? `${prefix}.${k}` : k));
  return [];
}
