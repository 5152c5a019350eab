// Bad input, DNS: Corefiles mutated at random (seeded; FUZZ_SEED=<n> reruns a stream) go through the
// parser in a worker with a time and a heap limit. Each must parse or throw KDP_DNS_CONFIG with a
// `Corefile:LINE:` message naming a line of the input, within the limits: a tokenizer that loops or grows
// without bound fails here with the input that did it.
import t from 'tap';
import { KUBEADM_COREFILE } from '../../../src/dns/corefile.ts';
import type { BlockConfig } from '../../../src/dns/corefile.ts';
import { BoundedCall } from '../../helpers/bounded.ts';
import { fuzzSeed, pick, rng } from '../../helpers/fuzz.ts';

const ITERATIONS = Number(process.env.KDP_FUZZ_ITERATIONS ?? 1500);

const BASES = [
  KUBEADM_COREFILE,
  `example.org:1053 cluster.local {\n  log\n  forward . "{$UP}" 10.0.0.1:53 {\n    policy sequential\n  }\n  cache 30 example.org {\n    success 100 60 5\n    prefetch 2 10m 20%\n  }\n}\n# comment\n.:1053 {\n  errors {\n    consolidate 5m ".* timeout$" warning\n  }\n}\n`,
];

/** what breaks lexers: odd whitespace, a BOM, brackets, quotes, escapes, substitutions, controls */
const PIECES = [
  '\uFEFF',
  '\u00a0',
  '\u0085',
  '\u2028',
  '\u3000',
  '\v',
  '\f',
  '\r',
  '\r\n',
  '\n',
  '\t',
  '\0',
  ' ',
  '{',
  '}',
  '{$',
  '{$UP',
  '{$UP}',
  '{$}',
  '"',
  '\\',
  '\\"',
  '#',
  ':',
  ',',
  'dns://',
  '\u{1f600}',
  '\ud800',
  'x'.repeat(70),
];

/** the input as an ASCII-only literal (a raw U+2028 or NEL in a TAP message breaks the report) */
const ascii = (s: string) =>
  JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function mutate(r: () => number, base: string): string {
  let s = base;
  const n = 1 + Math.floor(r() * 4);
  for (let k = 0; k < n; k++) {
    const at = Math.floor(r() * (s.length + 1));
    const op = r();
    if (op < 0.6) s = s.slice(0, at) + pick(r, PIECES) + s.slice(at);
    else if (op < 0.8) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 8));
    else {
      const len = Math.floor(r() * 30);
      s = s.slice(0, at) + s.slice(at, at + len).repeat(2) + s.slice(at + len);
    }
  }
  return s;
}

t.test('mutated Corefiles: parsed or a line-numbered KDP_DNS_CONFIG, in bounded time and memory', async (t) => {
  const parse = new BoundedCall<BlockConfig[]>(
    new URL('../../../src/dns/corefile.ts', import.meta.url),
    'parseCorefile',
    {
      maxOldMb: 64,
    },
  );
  t.teardown(() => parse.close());
  const seed = fuzzSeed();
  const r = rng(seed);
  let parsed = 0;
  let refused = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const text = mutate(r, pick(r, BASES));
    const lines = text.split('\n').length;
    const res = await parse.call([text, { UP: '10.0.0.9' }], 3000);
    const where = `seed ${seed} iteration ${i}: ${ascii(text)}`;
    if (res.ok) {
      parsed++;
      continue;
    }
    if ('limit' in res) {
      t.fail(`over the ${res.limit} limit after ${Math.round(res.ms)} ms; ${where}`);
      break;
    }
    const m = /^Corefile:(\d+): /.exec(res.error.message);
    if (res.error.code !== 'KDP_DNS_CONFIG' || !m || Number(m[1]) < 1 || Number(m[1]) > lines) {
      t.fail(`not a line-numbered KDP_DNS_CONFIG (${res.error.code}: ${res.error.message}); ${where}`);
      break;
    }
    refused++;
  }
  t.comment(`${ITERATIONS} mutated Corefiles: ${parsed} parsed, ${refused} refused with Corefile:LINE`);
  t.equal(parsed + refused, ITERATIONS, 'every input ended in a result or a line-numbered error');
  t.ok(parsed > 0 && refused > 0, 'the mutations reach both outcomes');
});
