// The upstream NetworkPolicy e2e cases (kubernetes test/e2e/network/netpol/network_policy.go) as data: per case the
// pods it creates (of the x/y/z x a/b/c model), the policies and label changes of each step, and the reachability
// matrix upstream asserts after each step, built with the same operations as upstream's reachability.go
// (ExpectPeer, ExpectAllIngress, ExpectAllEgress, Expect). Loopback (a pod to itself) is never asserted upstream
// (ignoreLoopback) and is left out of every matrix here. Policies are raw API objects, so the unit tests (evaluator)
// and the e2e tests (real packets in the lab) both go through the converter.
import type { Protocol } from '../../model/types.ts';

export type Raw = Record<string, unknown>;

/** The upstream model: namespaces x, y, z (labelled ns=<name> and kubernetes.io/metadata.name), pods a, b, c
 * (labelled pod=<name>), one container port per (port, protocol) named serve-<port>-<protocol>. */
export const MODEL_NAMESPACES = ['x', 'y', 'z'] as const;
export const MODEL_PODS = ['a', 'b', 'c'] as const;
export const ignoreLoopback = true;

export const portName = (port: number, protocol: Protocol): string => `serve-${port}-${protocol.toLowerCase()}`;

/** `from -> to -> connected`, keys `ns/pod`; the diagonal (loopback) is absent. */
export type Matrix = Readonly<Record<string, Readonly<Record<string, boolean>>>>;

export interface Probe {
  readonly port: number;
  readonly protocol: Protocol;
  readonly expected: Matrix;
}

export interface CaseStep {
  /** what upstream does before probing (for logs) */
  readonly what: string;
  /** every NetworkPolicy present in this step (full set, not a diff) */
  readonly policies: readonly Raw[];
  /** labels added to namespaces in this step (on top of the model's) */
  readonly namespaceLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** labels added to pods (`ns/pod`) in this step */
  readonly podLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly probes: readonly Probe[];
}

export interface NetpolCase {
  /** upstream's It() text */
  readonly name: string;
  /** upstream's Describe context: TCP, UDP or SCTP */
  readonly suite: 'TCP' | 'UDP' | 'SCTP';
  /** the pods upstream creates (`x/a` ...) */
  readonly pods: readonly string[];
  readonly ports: readonly number[];
  readonly protocols: readonly Protocol[];
  readonly steps: readonly CaseStep[];
}

/** What a case needs from the cluster it runs in: namespace names (upstream suffixes them) and pod addresses. */
export interface CaseContext {
  readonly ns: { readonly x: string; readonly y: string; readonly z: string };
  /** the IPv4 address of a model pod (`x/b`) */
  readonly podIP: (pod: string) => string;
}

// ---------------------------------------------------------------- reachability (upstream reachability.go)
class Reachability {
  readonly #pods: readonly string[];
  readonly #m = new Map<string, Map<string, boolean>>();
  constructor(pods: readonly string[], dflt = true) {
    this.#pods = pods;
    for (const f of pods) this.#m.set(f, new Map(pods.filter((t) => t !== f).map((t) => [t, dflt])));
  }
  #set(f: string, t: string, v: boolean): void {
    if (f !== t) this.#m.get(f)!.set(t, v);
  }
  expect(from: string, to: string, v: boolean): this {
    this.#set(from, to, v);
    return this;
  }
  expectAllIngress(to: string, v: boolean): this {
    for (const f of this.#pods) this.#set(f, to, v);
    return this;
  }
  expectAllEgress(from: string, v: boolean): this {
    for (const t of this.#pods) this.#set(from, t, v);
    return this;
  }
  /** Peer{Namespace, Pod}: an empty field matches everything */
  expectPeer(from: { ns?: string; pod?: string }, to: { ns?: string; pod?: string }, v: boolean): this {
    const m = (p: { ns?: string; pod?: string }, s: string): boolean => {
      const [ns, pod] = s.split('/') as [string, string];
      return (p.ns === undefined || p.ns === ns) && (p.pod === undefined || p.pod === pod);
    };
    for (const f of this.#pods) if (m(from, f)) for (const t of this.#pods) if (m(to, t)) this.#set(f, t, v);
    return this;
  }
  matrix(): Matrix {
    return Object.fromEntries([...this.#m].map(([f, row]) => [f, Object.fromEntries(row)]));
  }
}

// ---------------------------------------------------------------- policy builders (upstream policies.go helpers)
type Sel = { matchLabels?: Record<string, string>; matchExpressions?: Raw[] };
const np = (
  ns: string,
  name: string,
  podSelector: Sel,
  spec: { ingress?: Raw[]; egress?: Raw[]; policyTypes?: string[] },
): Raw => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace: ns },
  spec: {
    podSelector,
    ...(spec.ingress ? { ingress: spec.ingress } : {}),
    ...(spec.egress ? { egress: spec.egress } : {}),
    policyTypes: spec.policyTypes ?? [...(spec.ingress ? ['Ingress'] : []), ...(spec.egress ? ['Egress'] : [])],
  },
});
const pod = (v: string): Sel => ({ matchLabels: { pod: v } });
const NSKEY = 'kubernetes.io/metadata.name';
const nsIs = (n: string): Sel => ({ matchLabels: { [NSKEY]: n } });
const expr = (key: string, operator: string, values: string[]): Sel => ({
  matchExpressions: [{ key, operator, values }],
});

/** The pod names of a case as `ns/pod` with the context's namespace names. */
function podsOf(ctx: CaseContext, model: readonly string[]): string[] {
  const map: Record<string, string> = { x: ctx.ns.x, y: ctx.ns.y, z: ctx.ns.z };
  return model.map((p) => {
    const [n, name] = p.split('/') as [string, string];
    return `${map[n]}/${name}`;
  });
}

/** The /4 around an IPv4 address (upstream makeLargeCIDRForIP). */
function largeCIDR(ip: string): string {
  const first = Number(ip.split('.')[0]) & 0xf0;
  return `${first}.0.0.0/4`;
}

const TCP = 'TCP' as const;
const UDP = 'UDP' as const;
const SCTP = 'SCTP' as const;

/** Every upstream NetworkPolicy case, for the given namespace names and pod addresses. */
export function netpolCases(ctx: CaseContext): NetpolCase[] {
  const { x, y, z } = ctx.ns;
  const cases: NetpolCase[] = [];
  const add = (
    name: string,
    model: string[],
    ports: number[],
    protocols: Protocol[],
    steps: (R: () => Reachability, P: (m: string) => string) => CaseStep[],
    suite: NetpolCase['suite'] = 'TCP',
  ): void => {
    const pods = podsOf(ctx, model);
    const P = (m: string): string => podsOf(ctx, [m])[0]!;
    cases.push({ name, suite, pods, ports, protocols, steps: steps(() => new Reachability(pods), P) });
  };
  const one = (what: string, policies: Raw[], port: number, protocol: Protocol, r: Reachability): CaseStep => ({
    what,
    policies,
    probes: [{ port, protocol, expected: r.matrix() }],
  });

  for (const [suite, proto] of [
    ['TCP', TCP],
    ['UDP', UDP],
    ['SCTP', SCTP],
  ] as const) {
    const label = suite === 'TCP' ? '' : ` [${suite}]`;
    add(
      `should support a 'default-deny-ingress' policy${label}`,
      ['x/a', 'x/b', 'y/a', 'y/b'],
      [80],
      [proto],
      (R) => [
        one(
          'deny-ingress in x',
          [np(x, suite === 'TCP' ? 'deny-ingress' : 'deny-all', {}, { ingress: [] })],
          80,
          proto,
          R().expectPeer({}, { ns: x }, false),
        ),
      ],
      suite,
    );
    add(
      `should enforce policy based on Ports${label}`,
      suite === 'TCP' ? ['x/a', 'x/b', 'y/a', 'y/b', 'z/a'] : ['x/a', 'x/b', 'y/a', 'z/a'],
      [81],
      [proto],
      (R) => [
        one(
          'allow ns y to x/a on port 81',
          [
            np(x, 'allow-client-a-via-ns-selector', pod('a'), {
              ingress: [{ from: [{ namespaceSelector: nsIs(y) }], ports: [{ port: 81, protocol: proto }] }],
            }),
          ],
          81,
          proto,
          R()
            .expectPeer({ ns: x }, { ns: x, pod: 'a' }, false)
            .expectPeer({ ns: y }, { ns: x, pod: 'a' }, true)
            .expectPeer({ ns: z }, { ns: x, pod: 'a' }, false),
        ),
      ],
      suite,
    );
    add(
      `should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector${label}`,
      suite === 'TCP' ? ['x/a', 'x/b', 'y/a', 'y/b', 'z/a'] : ['x/a', 'x/b', 'y/a'],
      [80],
      [proto],
      (R, P) => [
        one(
          'allow y/a to x/a',
          [
            np(x, 'allow-ns-y-pod-a-via-namespace-pod-selector', pod('a'), {
              ingress: [{ from: [{ namespaceSelector: nsIs(y), podSelector: pod('a') }] }],
            }),
          ],
          80,
          proto,
          R().expectAllIngress(P('x/a'), false).expect(P('y/a'), P('x/a'), true),
        ),
      ],
      suite,
    );
  }

  add("should support a 'default-deny-all' policy", ['x/a', 'x/b', 'y/a'], [80], [TCP], (R) => [
    one(
      'deny-all in x',
      [np(x, 'deny-all', {}, { ingress: [], egress: [] })],
      80,
      TCP,
      R().expectPeer({}, { ns: x }, false).expectPeer({ ns: x }, {}, false),
    ),
  ]);
  add(
    'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
    ['x/a', 'x/b', 'x/c', 'y/a'],
    [80],
    [TCP],
    (R, P) => [
      one(
        'x/a allows x/b',
        [np(x, 'x-a-allows-x-b', pod('a'), { ingress: [{ from: [{ podSelector: pod('b') }] }] })],
        80,
        TCP,
        R().expectAllIngress(P('x/a'), false).expect(P('x/b'), P('x/a'), true),
      ),
    ],
  );
  add('should enforce policy to allow ingress traffic for a target', ['x/a', 'x/b', 'y/a'], [80], [TCP], (R, P) => [
    one(
      'deny-all in x plus allow-all-to-a',
      [
        np(x, 'deny-all', {}, { ingress: [] }),
        np(x, 'allow-all-to-a', pod('a'), { ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }] }),
      ],
      80,
      TCP,
      R().expectAllIngress(P('x/a'), true).expectAllIngress(P('x/b'), false),
    ),
  ]);
  add(
    'should enforce policy to allow ingress traffic from pods in all namespaces',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [TCP],
    (R) => [
      one(
        'allow from every namespace',
        [
          np(x, 'allow-from-another-ns', pod('a'), {
            ingress: [{ from: [{ namespaceSelector: { matchLabels: {} } }] }],
          }),
        ],
        80,
        TCP,
        R(),
      ),
    ],
  );
  const nsY = (name: string, sel: Sel): Raw =>
    np(x, name, pod('a'), { ingress: [{ from: [{ namespaceSelector: sel }] }] });
  add(
    'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [TCP],
    (R) => [
      one(
        'allow ns y',
        [nsY('allow-client-a-via-ns-selector', nsIs(y))],
        80,
        TCP,
        R().expectPeer({ ns: x }, { ns: x, pod: 'a' }, false).expectPeer({ ns: z }, { ns: x, pod: 'a' }, false),
      ),
    ],
  );
  add(
    'should enforce policy based on PodSelector with MatchExpressions',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [TCP],
    (R, P) => [
      one(
        'pod In [b]',
        [np(x, 'x-a-allows-x-b', pod('a'), { ingress: [{ from: [{ podSelector: expr('pod', 'In', ['b']) }] }] })],
        80,
        TCP,
        R().expectAllIngress(P('x/a'), false).expect(P('x/b'), P('x/a'), true),
      ),
    ],
  );
  add(
    'should enforce policy based on NamespaceSelector with MatchExpressions',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [TCP],
    (R) => [
      one(
        'ns In [y]',
        [nsY('allow-ns-y-match-selector', expr(NSKEY, 'In', [y]))],
        80,
        TCP,
        R().expectPeer({ ns: x }, { ns: x, pod: 'a' }, false).expectPeer({ ns: z }, { ns: x, pod: 'a' }, false),
      ),
    ],
  );
  add(
    'should enforce policy based on PodSelector or NamespaceSelector',
    ['x/a', 'x/b', 'x/c', 'y/a'],
    [80],
    [TCP],
    (R, P) => [
      one(
        'ns NotIn [x] OR pod=b',
        [
          np(x, 'allow-ns-y-match-selector', pod('a'), {
            ingress: [{ from: [{ namespaceSelector: expr(NSKEY, 'NotIn', [x]) }, { podSelector: pod('b') }] }],
          }),
        ],
        80,
        TCP,
        R().expect(P('x/a'), P('x/a'), false).expect(P('x/c'), P('x/a'), false),
      ),
    ],
  );
  add(
    'should enforce policy based on PodSelector and NamespaceSelector',
    ['x/a', 'x/b', 'y/a', 'y/b', 'z/b'],
    [80],
    [TCP],
    (R, P) => [
      one(
        'ns NotIn [x] AND pod=b',
        [
          np(x, 'allow-ns-y-podselector-and-nsselector', pod('a'), {
            ingress: [{ from: [{ namespaceSelector: expr(NSKEY, 'NotIn', [x]), podSelector: pod('b') }] }],
          }),
        ],
        80,
        TCP,
        R().expectAllIngress(P('x/a'), false).expect(P('y/b'), P('x/a'), true).expect(P('z/b'), P('x/a'), true),
      ),
    ],
  );
  add(
    'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
    ['x/a', 'x/b', 'y/a', 'y/b', 'y/c'],
    [80],
    [TCP],
    (R, P) => [
      one(
        'ns NotIn [x] AND pod In [b, c]',
        [
          np(x, 'allow-ns-y-z-pod-b-c', pod('a'), {
            ingress: [
              { from: [{ namespaceSelector: expr(NSKEY, 'NotIn', [x]), podSelector: expr('pod', 'In', ['b', 'c']) }] },
            ],
          }),
        ],
        80,
        TCP,
        R().expectPeer({ ns: x }, { ns: x, pod: 'a' }, false).expect(P('y/a'), P('x/a'), false),
      ),
    ],
  );
  add('should enforce policy based on any PodSelectors', ['x/a', 'x/b', 'x/c'], [80], [TCP], (R, P) => [
    one(
      'pod=b OR pod=c',
      [
        np(x, 'allow-ns-x-pod-b-c', pod('a'), {
          ingress: [{ from: [{ podSelector: pod('b') }, { podSelector: pod('c') }] }],
        }),
      ],
      80,
      TCP,
      R().expectAllIngress(P('x/a'), false).expect(P('x/b'), P('x/a'), true).expect(P('x/c'), P('x/a'), true),
    ),
  ]);
  {
    const p81 = np(x, 'allow-client-a-via-ns-selector', pod('a'), {
      ingress: [{ from: [{ namespaceSelector: nsIs(y) }], ports: [{ port: 81, protocol: 'TCP' }] }],
    });
    const p80 = np(x, 'allow-client-a-via-ns-selector-80', pod('a'), {
      ingress: [{ from: [{ namespaceSelector: nsIs(y) }], ports: [{ port: 80, protocol: 'TCP' }] }],
    });
    add(
      'should enforce multiple, stacked policies with overlapping podSelectors',
      ['x/a', 'x/b', 'y/a', 'y/b', 'z/a'],
      [80, 81],
      [TCP],
      (R, P) => {
        const allow = R()
          .expectPeer({ ns: x }, { ns: x, pod: 'a' }, false)
          .expectPeer({ ns: y }, { ns: x, pod: 'a' }, true)
          .expectPeer({ ns: z }, { ns: x, pod: 'a' }, false)
          .matrix();
        return [
          {
            what: 'port 81 policy only',
            policies: [p81],
            probes: [
              { port: 81, protocol: TCP, expected: allow },
              { port: 80, protocol: TCP, expected: R().expectAllIngress(P('x/a'), false).matrix() },
            ],
          },
          {
            what: 'port 80 policy added',
            policies: [p81, p80],
            probes: [{ port: 80, protocol: TCP, expected: allow }],
          },
        ];
      },
    );
  }
  add('should support allow-all policy', ['x/a', 'x/b', 'y/a'], [80, 81], [TCP], (R) => [
    {
      what: 'allow-all in x',
      policies: [np(x, 'allow-all', {}, { ingress: [{}] })],
      probes: [
        { port: 80, protocol: TCP, expected: R().matrix() },
        { port: 81, protocol: TCP, expected: R().matrix() },
      ],
    },
  ]);
  add('should allow ingress access on one named port', ['x/a', 'x/b', 'y/a'], [80, 81], [TCP], (R) => [
    {
      what: 'x allows only serve-81-tcp',
      policies: [np(x, 'allow-all', {}, { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })],
      probes: [
        { port: 81, protocol: TCP, expected: R().matrix() },
        { port: 80, protocol: TCP, expected: R().expectPeer({}, { ns: x }, false).matrix() },
      ],
    },
  ]);
  add(
    'should allow ingress access from namespace on one named port',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80, 81],
    [TCP],
    (R, P) => [
      {
        what: 'ns y to x/a on serve-80-tcp',
        policies: [
          np(x, 'allow-client-a-via-ns-selector-80', pod('a'), {
            ingress: [{ from: [{ namespaceSelector: nsIs(y) }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }],
          }),
        ],
        probes: [
          {
            port: 80,
            protocol: TCP,
            expected: R()
              .expectPeer({ ns: x }, { ns: x, pod: 'a' }, false)
              .expectPeer({ ns: z }, { ns: x, pod: 'a' }, false)
              .matrix(),
          },
          { port: 81, protocol: TCP, expected: R().expectAllIngress(P('x/a'), false).matrix() },
        ],
      },
    ],
  );
  add('should allow egress access on one named port', ['x/a', 'y/a'], [80, 81], [TCP], (R) => [
    {
      what: 'x egress only to serve-80-tcp',
      policies: [np(x, 'allow-egress', {}, { egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
      probes: [
        { port: 80, protocol: TCP, expected: R().matrix() },
        { port: 81, protocol: TCP, expected: R().expectPeer({ ns: x }, {}, false).matrix() },
      ],
    },
  ]);
  add('should enforce updated policy', ['x/a', 'y/a'], [81], [TCP], (R) => [
    one('allow all', [np(x, 'allow-all-mutate-to-deny-all', {}, { ingress: [{}] })], 81, TCP, R()),
    one(
      'updated to deny all',
      [np(x, 'allow-all-mutate-to-deny-all', {}, { ingress: [] })],
      81,
      TCP,
      R().expectPeer({}, { ns: x }, false),
    ),
  ]);
  add('should allow ingress access from updated namespace', ['x/a', 'y/a'], [80], [TCP], (R, P) => {
    const pol = [
      np(x, 'allow-client-a-via-ns-selector', pod('a'), {
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }],
      }),
    ];
    return [
      one('policy selects ns2=updated (nobody)', pol, 80, TCP, R().expectAllIngress(P('x/a'), false)),
      {
        ...one(
          'ns y labelled ns2=updated',
          pol,
          80,
          TCP,
          R().expectAllIngress(P('x/a'), false).expectPeer({ ns: y }, {}, true),
        ),
        namespaceLabels: { [y]: { ns2: 'updated' } },
      },
    ];
  });
  add('should allow ingress access from updated pod', ['x/a', 'x/b'], [80], [TCP], (R, P) => {
    const pol = [
      np(x, 'allow-client-a-via-pod-selector', pod('a'), {
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }],
      }),
    ];
    return [
      one('policy selects pod2=updated (nobody)', pol, 80, TCP, R().expectAllIngress(P('x/a'), false)),
      {
        ...one(
          'x/b labelled pod2=updated',
          pol,
          80,
          TCP,
          R().expectAllIngress(P('x/a'), false).expect(P('x/b'), P('x/a'), true),
        ),
        podLabels: { [P('x/b')]: { pod: 'b', pod2: 'updated' } },
      },
    ];
  });
  add('should deny ingress from pods on other namespaces', ['x/a', 'x/b', 'y/a', 'z/a'], [80], [TCP], (R) => [
    one(
      'x allows only its own pods',
      [np(x, 'deny-empty-policy', {}, { ingress: [{ from: [{ podSelector: { matchLabels: {} } }] }] })],
      80,
      TCP,
      R().expectPeer({ ns: y }, { ns: x }, false).expectPeer({ ns: z }, { ns: x }, false),
    ),
  ]);
  add('should deny ingress access to updated pod', ['x/a', 'y/a'], [80], [TCP], (R, P) => {
    const pol = [np(x, 'deny-ingress-via-label-selector', { matchLabels: { target: 'isolated' } }, { ingress: [] })];
    return [
      one('policy selects target=isolated (nobody)', pol, 80, TCP, R()),
      {
        ...one('x/a labelled target=isolated', pol, 80, TCP, R().expectAllIngress(P('x/a'), false)),
        podLabels: { [P('x/a')]: { target: 'isolated' } },
      },
    ];
  });
  add('should deny egress from pods based on PodSelector', ['x/a', 'x/b', 'y/a'], [80], [TCP], (R, P) => [
    one(
      'deny egress of x/a',
      [np(x, 'deny-egress-pod-a', pod('a'), { egress: [], policyTypes: ['Egress'] })],
      80,
      TCP,
      R().expectAllEgress(P('x/a'), false),
    ),
  ]);
  add('should deny egress from all pods in a namespace', ['x/a', 'x/b', 'y/a'], [80], [TCP], (R) => [
    one(
      'deny egress of x',
      [np(x, 'deny-egress-ns-x', {}, { egress: [], policyTypes: ['Egress'] })],
      80,
      TCP,
      R().expectPeer({ ns: x }, {}, false),
    ),
  ]);
  add('should work with Ingress, Egress specified together', ['x/a', 'x/b', 'x/c', 'y/a'], [80, 81], [TCP], (R, P) => [
    {
      what: 'x/a: ingress from pod=b, egress to port 80',
      policies: [
        np(x, 'allow-client-a-via-pod-selector', pod('a'), {
          ingress: [{ from: [{ podSelector: pod('b') }] }],
          egress: [{ ports: [{ port: 80 }] }],
          policyTypes: ['Egress', 'Ingress'],
        }),
      ],
      probes: [
        {
          port: 80,
          protocol: TCP,
          expected: R().expectAllIngress(P('x/a'), false).expect(P('x/b'), P('x/a'), true).matrix(),
        },
        {
          port: 81,
          protocol: TCP,
          expected: R()
            .expectAllIngress(P('x/a'), false)
            .expectAllEgress(P('x/a'), false)
            .expect(P('x/b'), P('x/a'), true)
            .matrix(),
        },
      ],
    },
  ]);
  add(
    'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    ['x/a', 'y/a', 'y/b'],
    [80],
    [TCP],
    (R) => {
      const ing = { ingress: [{ from: [{ namespaceSelector: nsIs(x), podSelector: pod('a') }] }] };
      return [
        one(
          'x/a egress only to y/a; y/a, y/b allow x/a',
          [
            np(x, 'allow-to-ns-y-pod-a', pod('a'), {
              egress: [{ to: [{ namespaceSelector: nsIs(y), podSelector: pod('a') }] }],
              policyTypes: ['Egress'],
            }),
            np(y, 'allow-from-xa-on-ya-match-selector', pod('a'), ing),
            np(y, 'allow-from-xa-on-yb-match-selector', pod('b'), ing),
          ],
          80,
          TCP,
          R()
            .expectPeer({ ns: x, pod: 'a' }, {}, false)
            .expectPeer({}, { ns: y, pod: 'a' }, false)
            .expectPeer({ ns: x, pod: 'a' }, { ns: y, pod: 'a' }, true)
            .expectPeer({}, { ns: y, pod: 'b' }, false),
        ),
      ];
    },
  );
  add(
    'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
    ['x/a', 'y/a', 'y/b'],
    [80],
    [TCP],
    (R, P) => [
      one(
        'x/a egress only to y/a',
        [
          np(x, 'allow-to-ns-y-pod-a', pod('a'), {
            egress: [{ to: [{ namespaceSelector: nsIs(y), podSelector: pod('a') }] }],
            policyTypes: ['Egress'],
          }),
        ],
        80,
        TCP,
        R().expectAllEgress(P('x/a'), false).expect(P('x/a'), P('y/a'), true),
      ),
    ],
  );
  add(
    'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
    ['x/a', 'y/a'],
    [80],
    [TCP, UDP],
    (R) => [
      {
        what: 'x/a allows TCP only',
        policies: [np(x, 'allow-ingress-by-proto', pod('a'), { ingress: [{ ports: [{ protocol: 'TCP' }] }] })],
        probes: [
          { port: 80, protocol: TCP, expected: R().matrix() },
          { port: 80, protocol: UDP, expected: R().expectPeer({}, { ns: x, pod: 'a' }, false).matrix() },
        ],
      },
    ],
  );
  {
    const only80 = np(x, 'allow-ingress-port-80', {}, { ingress: [{ ports: [{ port: 80 }] }] });
    add(
      'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
      ['x/a', 'y/a'],
      [81],
      [TCP],
      (R) => [
        one('x allows port 80 only', [only80], 81, TCP, R().expectPeer({}, { ns: x }, false)),
        one('allow-all added', [only80, np(x, 'allow-ingress', {}, { ingress: [{}] })], 81, TCP, R()),
      ],
    );
    const e80 = np(x, 'allow-egress-port-80', {}, { egress: [{ ports: [{ port: 80 }] }], policyTypes: ['Egress'] });
    add(
      'should enforce multiple egress policies with egress allow-all policy taking precedence',
      ['x/a', 'y/a'],
      [81],
      [TCP],
      (R) => [
        one('x egress to port 80 only', [e80], 81, TCP, R().expectPeer({ ns: x }, {}, false)),
        one(
          'egress allow-all added',
          [e80, np(x, 'allow-egress', {}, { egress: [{}], policyTypes: ['Egress'] })],
          81,
          TCP,
          R(),
        ),
      ],
    );
  }
  add('should stop enforcing policies after they are deleted', ['x/a', 'y/a'], [80], [TCP], (R) => [
    one(
      'deny-all in x',
      [np(x, 'deny-all', {}, { ingress: [], egress: [], policyTypes: ['Ingress', 'Egress'] })],
      80,
      TCP,
      R().expectPeer({ ns: x }, {}, false).expectPeer({}, { ns: x }, false),
    ),
    one('policies deleted', [], 80, TCP, R()),
  ]);
  add('should allow egress access to server in CIDR block', ['x/a', 'y/a', 'y/b'], [80], [TCP], (R, P) => [
    one(
      'x/a egress to y/b/32 only',
      [
        np(x, 'allow-client-a-via-cidr-egress-rule', pod('a'), {
          egress: [{ to: [{ ipBlock: { cidr: `${ctx.podIP('y/b')}/32` } }] }],
          policyTypes: ['Egress'],
        }),
      ],
      80,
      TCP,
      R().expectAllEgress(P('x/a'), false).expect(P('x/a'), P('y/b'), true),
    ),
  ]);
  const exceptB = np(x, 'allow-client-a-via-cidr-egress-rule', pod('a'), {
    egress: [{ to: [{ ipBlock: { cidr: largeCIDR(ctx.podIP('x/b')), except: [`${ctx.podIP('x/b')}/32`] } }] }],
    policyTypes: ['Egress'],
  });
  add(
    'should enforce except clause while egress access to server in CIDR block',
    ['x/a', 'x/b', 'x/c'],
    [80],
    [TCP],
    (R, P) => [one('x/a egress to the /4 except x/b', [exceptB], 80, TCP, R().expect(P('x/a'), P('x/b'), false))],
  );
  add(
    'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
    ['x/a', 'x/b', 'x/c'],
    [80],
    [TCP],
    (R, P) => [
      one('x/a egress to the /4 except x/b', [exceptB], 80, TCP, R().expect(P('x/a'), P('x/b'), false)),
      one(
        'policy updated: x/a egress to x/b/32 only',
        [
          np(x, 'allow-client-a-via-cidr-egress-rule', pod('a'), {
            egress: [{ to: [{ ipBlock: { cidr: `${ctx.podIP('x/b')}/32` } }] }],
            policyTypes: ['Egress'],
          }),
        ],
        80,
        TCP,
        R().expectAllEgress(P('x/a'), false).expect(P('x/a'), P('x/b'), true),
      ),
    ],
  );
  add(
    'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [TCP],
    (R, P) => {
      const eg = np(x, 'allow-egress-for-target', pod('a'), { egress: [{}], policyTypes: ['Egress'] });
      return [
        one('x/a egress allow-all', [eg], 80, TCP, R()),
        one(
          'x/a ingress denied',
          [eg, np(x, 'deny-ingress-via-label-selector', pod('a'), { ingress: [] })],
          80,
          TCP,
          R().expectAllIngress(P('x/a'), false),
        ),
      ];
    },
  );
  add(
    "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    ['x/a', 'y/a'],
    [81],
    [TCP],
    (R) => [
      one(
        'deny-ingress in x, SCTP 81 allowed to x/a',
        [
          np(x, 'deny-ingress', {}, { ingress: [] }),
          np(x, 'allow-only-sctp-ingress-on-port-81', pod('a'), {
            ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }],
          }),
        ],
        81,
        TCP,
        R().expectPeer({}, { ns: x }, false),
      ),
    ],
  );
  add(
    "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
    ['x/a', 'y/a'],
    [81],
    [TCP],
    (R, P) => [
      one(
        'SCTP 80 allowed to x/a',
        [
          np(x, 'allow-only-sctp-ingress-on-port-80', pod('a'), {
            ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }],
          }),
        ],
        81,
        TCP,
        R().expectAllIngress(P('x/a'), false),
      ),
    ],
  );
  add('should not allow access by TCP when a policy specifies only UDP', ['x/a', 'y/a'], [81], [TCP], (R, P) => [
    one(
      'UDP 81 allowed to x/a',
      [np(x, 'allow-only-udp-ingress-on-port-81', pod('a'), { ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] })],
      81,
      TCP,
      R().expectAllIngress(P('x/a'), false),
    ),
  ]);
  add(
    'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [TCP],
    (R) => [
      one(
        'ns y by its name label',
        [nsY('allow-client-a-via-ns-selector-for-immutable-ns-label', nsIs(y))],
        80,
        TCP,
        R().expectPeer({ ns: x }, { ns: x, pod: 'a' }, false).expectPeer({ ns: z }, { ns: x, pod: 'a' }, false),
      ),
    ],
  );
  add(
    'should enforce policy based on NamespaceSelector with MatchExpressions using default ns label',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [TCP],
    (R) => [
      one(
        'x/a egress to ns NotIn [y]',
        [
          np(x, 'allow-ns-y-match-selector-for-immutable-ns-label', pod('a'), {
            egress: [{ to: [{ namespaceSelector: expr(NSKEY, 'NotIn', [y]) }] }],
            policyTypes: ['Egress'],
          }),
        ],
        80,
        TCP,
        R().expectPeer({ ns: x, pod: 'a' }, { ns: y }, false),
      ),
    ],
  );
  return cases;
}

/** The model's namespaces and pods of a case as raw objects (pods get the given IPs; labels of a step applied). */
export function modelObjects(
  c: NetpolCase,
  ctx: CaseContext,
  step: CaseStep,
  opts: { readonly nodeOf?: (pod: string) => string } = {},
): Raw[] {
  const out: Raw[] = [];
  for (const n of [ctx.ns.x, ctx.ns.y, ctx.ns.z])
    out.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: n, labels: { ns: n, 'kubernetes.io/metadata.name': n, ...step.namespaceLabels?.[n] } },
    });
  const inverse: Record<string, string> = { [ctx.ns.x]: 'x', [ctx.ns.y]: 'y', [ctx.ns.z]: 'z' };
  for (const p of c.pods) {
    const [ns, name] = p.split('/') as [string, string];
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { pod: name, ...step.podLabels?.[p] } },
      spec: {
        ...(opts.nodeOf ? { nodeName: opts.nodeOf(p) } : {}),
        containers: c.ports.flatMap((port) =>
          c.protocols.map((protocol) => ({
            name: `cont-${port}-${protocol.toLowerCase()}`,
            ports: [{ containerPort: port, name: portName(port, protocol), protocol }],
          })),
        ),
      },
      status: { phase: 'Running', podIP: ctx.podIP(`${inverse[ns]}/${name}`) },
    });
  }
  return out;
}

// ---------------------------------------------------------------- AdminNetworkPolicy / BaselineAdminNetworkPolicy
// From kubernetes-sigs/network-policy-api conformance: the base model (conformance/base/manifests.yaml: four
// namespaces labelled conformance-house, two pods each serving TCP 80/8080, UDP 53/5353, SCTP 9003/9005) and the
// "AdminNetworkPolicyIntegration" test (tests/admin-network-policy-core-integration.go on
// base/api_integration/core-anp-np-banp.yaml): ANP Deny, then Pass falling to the NetworkPolicy, then Pass falling
// to the BANP once the NetworkPolicy is deleted. Each step lists upstream's PokeServer calls with their expectation.

export interface AdminProbe {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly connected: boolean;
}

export interface AdminCaseStep {
  readonly what: string;
  /** every policy present (full set) */
  readonly policies: readonly Raw[];
  readonly probes: readonly AdminProbe[];
}

export interface AdminCase {
  readonly name: string;
  readonly steps: readonly AdminCaseStep[];
}

const HOUSES = [
  ['gryffindor', 'harry-potter'],
  ['slytherin', 'draco-malfoy'],
  ['hufflepuff', 'cedric-diggory'],
  ['ravenclaw', 'luna-lovegood'],
] as const;
const houseNs = (h: string): string => `network-policy-conformance-${h}`;

/** The conformance base model: namespaces and pods (`<ns>/<pod>`), addresses from podIP. */
export function adminModelObjects(podIP: (pod: string) => string): Raw[] {
  const out: Raw[] = [];
  for (const [house, prefix] of HOUSES) {
    out.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: houseNs(house), labels: { 'conformance-house': house } },
    });
    for (const i of [0, 1]) {
      const name = `${prefix}-${i}`;
      out.push({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: houseNs(house), labels: { 'conformance-house': house } },
        spec: {
          containers: [
            // upstream names two ports: web (TCP 80) and dns (UDP 53), used by the NamedPort tests
            { name: 'c-80', ports: [{ containerPort: 80, protocol: 'TCP', name: 'web' }] },
            { name: 'c-8080', ports: [{ containerPort: 8080, protocol: 'TCP' }] },
            { name: 'c-53', ports: [{ containerPort: 53, protocol: 'UDP', name: 'dns' }] },
            { name: 'c-5353', ports: [{ containerPort: 5353, protocol: 'UDP' }] },
            ...([9003, 9005] as const).map((p) => ({
              name: `c-${p}`,
              ports: [{ containerPort: p, protocol: 'SCTP' }],
            })),
          ],
        },
        status: { phase: 'Running', podIP: podIP(`${houseNs(house)}/${name}`) },
      });
    }
  }
  return out;
}

/** Every pod of the conformance model, `<ns>/<pod>`. */
export const ADMIN_MODEL_PODS: readonly string[] = HOUSES.flatMap(([h, p]) =>
  [0, 1].map((i) => `${houseNs(h)}/${p}-${i}`),
);

export function adminCases(): AdminCase[] {
  const house = (h: string) => ({ matchLabels: { 'conformance-house': h } });
  const anp = (ingress: string, egress: string): Raw => ({
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name: 'pass-example' },
    spec: {
      priority: 10,
      subject: { namespaces: house('gryffindor') },
      ingress: [
        { name: 'deny-all-ingress-from-slytherin', action: ingress, from: [{ namespaces: house('slytherin') }] },
      ],
      egress: [{ name: 'deny-all-egress-to-slytherin', action: egress, to: [{ namespaces: house('slytherin') }] }],
    },
  });
  const np: Raw = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'allow-gress-from-to-slytherin-to-gryffindor', namespace: houseNs('gryffindor') },
    spec: {
      podSelector: {},
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: house('slytherin') }] }],
      egress: [{ to: [{ namespaceSelector: house('slytherin') }] }],
    },
  };
  const banp: Raw = {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: {
      subject: { namespaces: house('gryffindor') },
      ingress: [
        { name: 'deny-all-ingress-from-slytherin', action: 'Deny', from: [{ namespaces: house('slytherin') }] },
      ],
      egress: [{ name: 'deny-all-egress-to-slytherin', action: 'Deny', to: [{ namespaces: house('slytherin') }] }],
    },
  };
  const G = houseNs('gryffindor');
  const S = houseNs('slytherin');
  const intoG = (connected: boolean): AdminProbe[] => [
    { from: `${S}/draco-malfoy-0`, to: `${G}/harry-potter-0`, port: 80, protocol: 'TCP', connected },
    { from: `${S}/draco-malfoy-1`, to: `${G}/harry-potter-0`, port: 8080, protocol: 'TCP', connected },
  ];
  const outOfG = (connected: boolean): AdminProbe[] => [
    { from: `${G}/harry-potter-0`, to: `${S}/draco-malfoy-0`, port: 80, protocol: 'TCP', connected },
    { from: `${G}/harry-potter-1`, to: `${S}/draco-malfoy-0`, port: 8080, protocol: 'TCP', connected },
  ];
  return [
    {
      name: 'AdminNetworkPolicyIntegration',
      steps: [
        { what: 'ANP denies ingress from slytherin', policies: [anp('Deny', 'Deny'), np, banp], probes: intoG(false) },
        { what: 'ANP denies egress to slytherin', policies: [anp('Deny', 'Deny'), np, banp], probes: outOfG(false) },
        {
          what: 'ingress rule Pass: the NetworkPolicy allows',
          policies: [anp('Pass', 'Deny'), np, banp],
          probes: intoG(true),
        },
        {
          what: 'egress rule Pass: the NetworkPolicy allows',
          policies: [anp('Pass', 'Pass'), np, banp],
          probes: outOfG(true),
        },
        {
          what: 'NetworkPolicy deleted: ingress passes to the BANP, which denies',
          policies: [anp('Pass', 'Pass'), banp],
          probes: intoG(false),
        },
        {
          what: 'NetworkPolicy deleted: egress passes to the BANP, which denies',
          policies: [anp('Pass', 'Pass'), banp],
          probes: outOfG(false),
        },
      ],
    },
  ];
}
