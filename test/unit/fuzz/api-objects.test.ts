// Bad input, API objects: every example object mutated at random (wrong types, hostile strings, deleted and
// duplicated fields) goes through the converter and the manifests parser. Nothing may throw, every rejection
// carries a reason, and whatever is accepted holds only strings that are safe to put into rule text, DNS names
// and file paths downstream (the converter is the one place that validates them).
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { convertAny } from '../../../src/k8s/convert.ts';
import type { Raw } from '../../../src/k8s/convert.ts';
import { parseManifest } from '../../../src/k8s/manifests-source.ts';
import { fuzzSeed, mutate, pick, rng, stringLeaves } from '../../helpers/fuzz.ts';

const EXAMPLES = new URL('../../../examples/cluster/', import.meta.url).pathname;

const bases: Raw[] = [];
for (const f of readdirSync(EXAMPLES)
  .filter((n) => n.endsWith('.yaml'))
  .sort()) {
  for (const doc of parseAllDocuments(readFileSync(EXAMPLES + f, 'utf8'))) {
    const js = doc.toJS() as Raw | null;
    if (!js) continue;
    if (js.kind === 'List') bases.push(...(js.items as Raw[]));
    else bases.push(js);
  }
}
bases.push({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: [
    {
      addresses: ['198.19.1.10'],
      conditions: { ready: true, serving: true, terminating: false },
      hostname: 'web-0',
      nodeName: 'node-1',
      zone: 'a',
      targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' },
    },
  ],
  ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
});

// Gateway API objects (the compile scenarios): their routes, refs and filters reach only the ingress route
// compiler, which judges them (status conditions) and validates header text itself
const GATEWAY_FIXTURES = new URL('../../fixtures/gateway/', import.meta.url).pathname;
for (const f of ['basic.yaml', 'invalid.yaml'])
  for (const doc of parseAllDocuments(readFileSync(GATEWAY_FIXTURES + f, 'utf8'))) {
    const js = doc.toJS() as Raw | null;
    if (js) bases.push(js);
  }
const GATEWAY_KINDS = new Set(['GatewayClass', 'Gateway', 'HTTPRoute', 'GRPCRoute', 'ReferenceGrant']);
const GATEWAY_FREE_TEXT = [
  /^(rules|parentRefs|from|to)\[/,
  /^listeners\[\d+\]\.(name|protocol|tls|allowedRoutes)\b/,
  /^(controllerName|gatewayClassName|created)$/,
  /^addresses\[\d+\]\.(type|value)$/, // IPAddress values are validated; other types are only compared
];

// string fields that never reach rule text, DNS names or paths: free text as in the API
const FREE_TEXT = [
  /^selector\./,
  /^meta\.(labels|annotations|uid|resourceVersion|deletionTimestamp)\b/,
  /^(certPem|keyPem)$/,
  /\.targetRef\./,
  /\.zone$/,
  /^controller$/,
  /\.appProtocol$/,
  /^(rules\[\d+\]\.paths\[\d+\]\.path)$/,
  /^loadBalancer\[\d+\]\.hostname$/,
];
// a token safe in nft/iptables-restore text, DNS names and file names: no whitespace, quotes, separators
const SAFE = /^[A-Za-z0-9.*:/_-]*$/;

t.test('mutated API objects: no throw, a reason for every rejection, only safe strings accepted', async (t) => {
  const seed = fuzzSeed();
  const r = rng(seed);
  const N = Number(process.env.FUZZ_ITERATIONS ?? 4000);
  let accepted = 0;
  let rejected = 0;
  const problems: string[] = [];
  for (let i = 0; i < N && problems.length < 5; i++) {
    const base = pick(r, bases);
    const { value, log } = mutate(r, base);
    const where = `seed ${seed} iteration ${i} (${String(base.kind)} ${String((base.metadata as Raw | undefined)?.name)}: ${log.join('; ')})`;
    let res: ReturnType<typeof convertAny>;
    try {
      res = convertAny(value as Raw);
    } catch (err) {
      problems.push(`${where}: threw ${String(err)}`);
      continue;
    }
    if (!res.ok) {
      rejected++;
      if (typeof res.reason !== 'string' || res.reason === '') problems.push(`${where}: rejected without a reason`);
      continue;
    }
    accepted++;
    for (const obj of res.value) {
      for (const [path, s] of stringLeaves(obj)) {
        if (FREE_TEXT.some((re) => re.test(path))) continue;
        if (GATEWAY_KINDS.has(obj.kind) && GATEWAY_FREE_TEXT.some((re) => re.test(path))) continue;
        if (!SAFE.test(s) || s.length > 253)
          problems.push(`${where}: accepted unsafe ${obj.kind}.${path} = ${JSON.stringify(s).slice(0, 80)}`);
      }
    }
  }
  t.same(problems, [], 'no crash, no unsafe accepted string');
  t.ok(
    accepted > N / 20 && rejected > N / 20,
    `the mutations exercise both outcomes (accepted ${accepted}, rejected ${rejected})`,
  );
});

t.test('mutated manifest text: the parser returns a result for any bytes', async (t) => {
  const seed = fuzzSeed();
  const r = rng(seed + 1);
  const texts = readdirSync(EXAMPLES)
    .filter((n) => n.endsWith('.yaml'))
    .map((f) => readFileSync(EXAMPLES + f, 'utf8'));
  const hostile = [
    '\t',
    ': :',
    '- [',
    '{',
    '&a [*a, *a]',
    '*nope',
    '!!binary x',
    '\u0000',
    '---\n',
    '%YAML 9.9\n',
    '? ',
    '|\n',
    'kind: List\nitems: 7\n',
    '\n  ',
  ];
  const problems: string[] = [];
  const N = Number(process.env.FUZZ_ITERATIONS ?? 4000) / 4;
  for (let i = 0; i < N && problems.length < 5; i++) {
    let text = pick(r, texts);
    const edits = 1 + Math.floor(r() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * text.length);
      const op = r();
      if (op < 0.4) text = text.slice(0, at) + pick(r, hostile) + text.slice(at);
      else if (op < 0.7) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 20));
      else text = text.slice(0, at) + String.fromCharCode(Math.floor(r() * 128)) + text.slice(at + 1);
    }
    try {
      const p = parseManifest(text);
      if (!p.ok && (typeof p.reason !== 'string' || !(p.line >= 1)))
        problems.push(`seed ${seed} iteration ${i}: broken file without line/reason`);
      if (p.ok)
        for (const s of p.skipped) if (!s.reason) problems.push(`seed ${seed} iteration ${i}: skipped without reason`);
    } catch (err) {
      problems.push(`seed ${seed} iteration ${i}: threw ${String(err)}`);
    }
  }
  t.same(problems, [], 'no crash on mutated YAML');
});

t.test('alias bombs are refused, not expanded', async (t) => {
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 0; i < 12; i++)
    bomb.push(
      `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10)
        .fill(`*${String.fromCharCode(97 + i)}`)
        .join(',')}]`,
    );
  const started = Date.now();
  let threw: unknown;
  let res: ReturnType<typeof parseManifest> | undefined;
  try {
    res = parseManifest(bomb.join('\n') + '\nkind: Service\napiVersion: v1\n');
  } catch (err) {
    threw = err;
  }
  t.equal(threw, undefined, 'no throw');
  t.ok(res && !res.ok, 'the file is reported broken');
  t.ok(Date.now() - started < 2000, 'and quickly');
});
