// Gateway API conformance (GATEWAY-HTTP core), part 2 of 3: invalid references, ReferenceGrant, listener and
// route status (conditions, reasons, attachedRoutes, observedGeneration), with the requests upstream makes.
// Same harness as part 1 (test/helpers/gateway-conformance.ts). In manifests mode there is no API server to bump
// metadata.generation on an edit: the tests that edit an object write the next generation themselves.
import t from 'tap';
import { needsRoot } from '../helpers/gate.ts';
import { APP, Conformance, INFRA, V1, WEB } from '../helpers/gateway-conformance.ts';
import type { ObjectStatus } from '../helpers/gateway-conformance.ts';

const SAME = `${INFRA}/same-namespace`;
type Obj = Record<string, unknown>;
const ok: [string, string][] = [
  ['Accepted', 'True'],
  ['ResolvedRefs', 'True'],
];

/** sets metadata.generation of the objects `which` selects (what the API server does on a spec change) */
function generation(n: number, which: (o: Obj) => boolean) {
  return (o: Obj): Obj =>
    which(o)
      ? { ...o, metadata: { ...(o.metadata as Obj), generation: n } }
      : { ...o, metadata: { ...(o.metadata as Obj) } };
}

const named = (kind: string, name: string) => (o: Obj) => o.kind === kind && (o.metadata as Obj).name === name;

if (needsRoot(t, 'Gateway listeners on port 80/443 of 127.12.0.0/16')) {
  const c = await Conformance.start(t, { pool: '127.12.0.0/16', podNet: '127.0.22', name: 'status' });

  const conf = c.test.bind(c);

  /** upstream's *MustHaveLatestConditions: conditions present, every observedGeneration = generation */
  const latest = async (kind: 'gateways' | 'httpRoutes' | 'classes', key: string): Promise<ObjectStatus> =>
    c.waitFor(`${kind} ${key} with the latest conditions`, async () => {
      const s = (await c.status())[kind].find((x) => x.key === key);
      if (!s) throw new Error('no status');
      const conds = kind === 'httpRoutes' ? (s.parents ?? []).flatMap((p) => p.conditions) : (s.conditions ?? []);
      if (conds.length === 0) throw new Error('no conditions');
      const stale = conds.filter((x) => x.observedGeneration !== s.generation);
      if (stale.length > 0) throw new Error(`generation ${s.generation}, stale: ${JSON.stringify(stale)}`);
      return s;
    });

  await conf('HTTPRouteInvalidBackendRefUnknownKind', ['httproute-invalid-backendref-unknown-kind.yaml'], async (t) => {
    const route = `${INFRA}/invalid-backend-ref-unknown-kind`;
    await c.routesAccepted(SAME, [route]);
    await c.routeCondition(route, SAME, 'ResolvedRefs', 'False', 'InvalidKind');
    await c.expect(t, SAME, 80, [{ path: '/v2', status: 500 }]);
  });

  await conf(
    'HTTPRouteInvalidCrossNamespaceBackendRef',
    ['httproute-invalid-cross-namespace-backend-ref.yaml'],
    async (t) => {
      const route = `${INFRA}/invalid-cross-namespace-backend-ref`;
      await c.routesAccepted(SAME, [route]);
      await c.routeCondition(route, SAME, 'ResolvedRefs', 'False', 'RefNotPermitted');
      await c.expect(t, SAME, 80, [{ path: '/', status: 500 }]);
    },
  );

  await conf(
    'HTTPRouteInvalidCrossNamespaceParentRef',
    ['httproute-invalid-cross-namespace-parent-ref.yaml'],
    async (t) => {
      const route = `${WEB}/invalid-cross-namespace-parent-ref`;
      await c.resolvedRefs(route, SAME);
      await c.routeCondition(route, SAME, 'Accepted', 'False', 'NotAllowedByListeners');
      await c.routeNotAccepted(route);
      await c.listeners(SAME, [{ name: 'http', attachedRoutes: 0 }], true);
      t.pass('NotAllowedByListeners, not attached');
    },
  );

  await conf('HTTPRouteInvalidNonExistentBackendRef', ['httproute-invalid-nonexistent-backendref.yaml'], async (t) => {
    const route = `${INFRA}/invalid-nonexistent-backend-ref`;
    await c.routesAccepted(SAME, [route]);
    await c.routeCondition(route, SAME, 'ResolvedRefs', 'False', 'BackendNotFound');
    await c.expect(t, SAME, 80, [{ path: '/', status: 500 }]);
  });

  await conf(
    'HTTPRouteInvalidParentRefNotMatchingSectionName',
    ['httproute-invalid-parentref-not-matching-section-name.yaml'],
    async (t) => {
      const route = `${INFRA}/httproute-listener-not-matching-section-name`;
      await c.routeCondition(route, SAME, 'Accepted', 'False', 'NoMatchingParent');
      await c.routeNotAccepted(route);
      await c.listeners(SAME, [{ name: 'http', attachedRoutes: 0 }], true);
      t.pass('NoMatchingParent, not attached');
    },
  );

  await conf('HTTPRouteInvalidReferenceGrant', ['httproute-invalid-reference-grant.yaml'], async (t) => {
    const route = `${INFRA}/reference-grant`;
    await c.routesAccepted(SAME, [route]);
    await c.routeCondition(route, SAME, 'ResolvedRefs', 'False', 'RefNotPermitted');
    await c.expect(t, SAME, 80, [{ path: '/', status: 500 }]);
  });

  await conf('HTTPRouteReferenceGrant', ['httproute-reference-grant.yaml'], async (t) => {
    const route = `${INFRA}/reference-grant`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(t, SAME, 80, [{ path: '/', backend: 'web-backend', namespace: WEB }]);
    // the ReferenceGrant is deleted: 500 from then on
    await c.apply('httproute-reference-grant.yaml', (o) => (o.kind === 'ReferenceGrant' ? undefined : o));
    await c.expect(t, SAME, 80, [{ path: '/', status: 500 }]);
  });

  await conf(
    'HTTPRoutePartiallyInvalidViaInvalidReferenceGrant',
    ['httproute-partially-invalid-via-invalid-reference-grant.yaml'],
    async (t) => {
      const route = `${INFRA}/invalid-reference-grant`;
      await c.routesAccepted(SAME, [route]);
      await c.routeCondition(route, SAME, 'ResolvedRefs', 'False', 'RefNotPermitted');
      await c.expect(t, SAME, 80, [
        { path: '/v2', status: 500 },
        { path: '/', backend: 'app-backend-v1', namespace: APP },
      ]);
    },
  );

  await conf('HTTPRouteOmittedBackendRefs', ['httproute-omitted-backendrefs.yaml'], async (t) => {
    const route = `${INFRA}/omitted-backendrefs`;
    await c.routesAccepted(SAME, [route]);
    await c.resolvedRefs(route, SAME);
    await c.expect(t, SAME, 80, [
      { path: '/forward', backend: V1 },
      { path: '/omitted-no-forward', status: 500 },
      { path: '/empty-no-forward', status: 500 },
    ]);
  });

  await conf('HTTPRouteObservedGenerationBump', [], async (t) => {
    const file = 'httproute-observed-generation-bump.yaml';
    const route = `${INFRA}/observed-generation-bump`;
    await c.apply(file, generation(1, named('HTTPRoute', 'observed-generation-bump')));
    const before = await latest('httpRoutes', route);
    await c.apply(file, (o) => {
      if (!named('HTTPRoute', 'observed-generation-bump')(o)) return o;
      const spec = structuredClone(o.spec) as { rules: { backendRefs: { name: string }[] }[] };
      spec.rules[0]!.backendRefs[0]!.name = 'infra-backend-v2';
      return { ...o, spec, metadata: { ...(o.metadata as Obj), generation: 2 } };
    });
    await c.routeCondition(route, SAME, 'Accepted', 'True');
    await c.resolvedRefs(route, SAME);
    const after = await latest('httpRoutes', route);
    t.not(after.generation, before.generation, 'generation changed, conditions follow it');
    await c.remove(file);
  });

  await conf('GatewayInvalidRouteKind', ['gateway-invalid-route-kind.yaml'], async (t) => {
    await c.listeners(
      `${INFRA}/gateway-only-invalid-route-kind`,
      [{ name: 'http', kinds: [], attachedRoutes: 0, conditions: [['ResolvedRefs', 'False', 'InvalidRouteKinds']] }],
      true,
    );
    await c.listeners(
      `${INFRA}/gateway-supported-and-invalid-route-kind`,
      [
        {
          name: 'http',
          kinds: ['HTTPRoute'],
          attachedRoutes: 0,
          conditions: [['ResolvedRefs', 'False', 'InvalidRouteKinds']],
        },
      ],
      true,
    );
    t.pass('InvalidRouteKinds');
  });

  await conf('GatewayInvalidTLSConfiguration', ['gateway-invalid-tls-configuration.yaml'], async (t) => {
    for (const gw of [
      'gateway-certificate-nonexistent-secret',
      'gateway-certificate-unsupported-group',
      'gateway-certificate-unsupported-kind',
      'gateway-certificate-malformed-secret',
    ]) {
      await c.listeners(
        `${INFRA}/${gw}`,
        [
          {
            name: 'https',
            kinds: ['HTTPRoute'],
            attachedRoutes: 0,
            conditions: [['ResolvedRefs', 'False', 'InvalidCertificateRef']],
          },
        ],
        true,
      );
      t.pass(`${gw}: InvalidCertificateRef`);
    }
  });

  await conf('GatewayModifyListeners', [], async (t) => {
    const file = 'gateway-modify-listeners.yaml';
    await c.apply(
      file,
      generation(1, (o) => o.kind === 'Gateway'),
    );
    const add = `${INFRA}/gateway-add-listener`;
    const before = await latest('gateways', add);
    await c.apply(file, (o) => {
      if (!named('Gateway', 'gateway-add-listener')(o)) return generation(1, (x) => x.kind === 'Gateway')(o);
      const spec = structuredClone(o.spec) as { listeners: Obj[] };
      spec.listeners.push({
        name: 'http',
        port: 80,
        protocol: 'HTTP',
        hostname: 'data.test.com',
        allowedRoutes: { namespaces: { from: 'All' } },
      });
      return { ...o, spec, metadata: { ...(o.metadata as Obj), generation: 2 } };
    });
    await c.listeners(
      add,
      [
        { name: 'https', kinds: ['HTTPRoute'], attachedRoutes: 1, conditions: ok },
        { name: 'http', kinds: ['HTTPRoute'], attachedRoutes: 1, conditions: ok },
      ],
      true,
    );
    const after = await latest('gateways', add);
    t.not(after.generation, before.generation, 'added: generation changed');

    const del = `${INFRA}/gateway-remove-listener`;
    const before2 = await latest('gateways', del);
    await c.apply(file, (o) => {
      if (!named('Gateway', 'gateway-remove-listener')(o)) return generation(1, (x) => x.kind === 'Gateway')(o);
      const spec = structuredClone(o.spec) as { listeners: Obj[] };
      spec.listeners = spec.listeners.filter((l) => l.name === 'http');
      return { ...o, spec, metadata: { ...(o.metadata as Obj), generation: 2 } };
    });
    await c.listeners(del, [{ name: 'http', kinds: ['HTTPRoute'], attachedRoutes: 1, conditions: ok }], true);
    const after2 = await latest('gateways', del);
    t.not(after2.generation, before2.generation, 'removed: generation changed');
    await c.remove(file);
  });

  await conf('GatewayNameMaximumLength', ['gateway-name-maximum-length.yaml'], async (t) => {
    const [obj] = await c.load('gateway-name-maximum-length.yaml');
    const name = String((obj!.metadata as Obj).name);
    t.equal(name.length, 253, 'the longest name a Gateway may have');
    const gw = await latest('gateways', `${INFRA}/${name}`);
    t.ok(gw.conditions?.length, 'a Gateway with a 253-character name has current conditions');
  });

  await conf('GatewayObservedGenerationBump', [], async (t) => {
    const file = 'gateway-observed-generation-bump.yaml';
    const gw = `${INFRA}/gateway-observed-generation-bump`;
    await c.apply(
      file,
      generation(1, (o) => o.kind === 'Gateway'),
    );
    const before = await latest('gateways', gw);
    await c.apply(file, (o) => {
      if (o.kind !== 'Gateway') return o;
      const spec = structuredClone(o.spec) as { listeners: Obj[] };
      spec.listeners.push({
        name: 'alternate',
        hostname: 'foo.com',
        port: 80,
        protocol: 'HTTP',
        allowedRoutes: { namespaces: { from: 'All' } },
      });
      return { ...o, spec, metadata: { ...(o.metadata as Obj), generation: 2 } };
    });
    const after = await latest('gateways', gw);
    t.not(after.generation, before.generation, 'observedGeneration follows the generation');
    await c.remove(file);
  });

  await conf('GatewayClassObservedGenerationBump', [], async (t) => {
    const file = 'gatewayclass-observed-generation-bump.yaml';
    const cls = 'gatewayclass-observed-generation-bump';
    await c.apply(
      file,
      generation(1, () => true),
    );
    const before = await latest('classes', cls);
    t.ok(
      before.conditions?.some((x) => x.type === 'Accepted'),
      'Accepted condition',
    );
    await c.apply(file, (o) => ({
      ...o,
      spec: { ...(o.spec as Obj), description: 'new' },
      metadata: { ...(o.metadata as Obj), generation: 2 },
    }));
    const after = await latest('classes', cls);
    t.not(after.generation, before.generation, 'observedGeneration follows the generation');
    await c.remove(file);
  });

  for (const [name, file, gw, want] of [
    [
      'GatewaySecretInvalidReferenceGrant',
      'gateway-secret-invalid-reference-grant.yaml',
      'gateway-secret-invalid-reference-grant',
      'RefNotPermitted',
    ],
    [
      'GatewaySecretMissingReferenceGrant',
      'gateway-secret-missing-reference-grant.yaml',
      'gateway-secret-missing-reference-grant',
      'RefNotPermitted',
    ],
    [
      'GatewaySecretReferenceGrantAllInNamespace',
      'gateway-secret-reference-grant-all-in-namespace.yaml',
      'gateway-secret-reference-grant-all-in-namespace',
      '',
    ],
    [
      'GatewaySecretReferenceGrantSpecific',
      'gateway-secret-reference-grant-specific.yaml',
      'gateway-secret-reference-grant-specific',
      '',
    ],
  ] as const)
    await conf(name, [file], async (t) => {
      const conditions: [string, string, string?][] =
        want === ''
          ? [
              ['Programmed', 'True', 'Programmed'],
              ['ResolvedRefs', 'True'],
            ]
          : [['ResolvedRefs', 'False', want]];
      await c.listeners(
        `${INFRA}/${gw}`,
        [{ name: 'https', kinds: ['HTTPRoute'], attachedRoutes: 0, conditions }],
        true,
      );
      t.pass(want || 'ResolvedRefs, Programmed');
    });

  await conf('GatewayWithAttachedRoutes', ['gateway-with-attached-routes.yaml'], async (t) => {
    await c.listeners(
      `${INFRA}/gateway-with-one-attached-route`,
      [{ name: 'http', kinds: ['HTTPRoute'], attachedRoutes: 1, conditions: ok }],
      true,
    );
    const two = `${INFRA}/gateway-with-two-attached-routes`;
    await c.listeners(two, [{ name: 'http', kinds: ['HTTPRoute'], attachedRoutes: 2, conditions: ok }], true);
    await c.routeCondition(`${INFRA}/http-route-not-accepted`, two, 'Accepted', 'False', 'NoMatchingListenerHostname');
    const unresolved = `${INFRA}/unresolved-gateway-with-one-attached-unresolved-route`;
    await c.listeners(
      unresolved,
      [
        {
          name: 'tls',
          kinds: ['HTTPRoute'],
          attachedRoutes: 1,
          conditions: [
            ['Programmed', 'False'],
            ['ResolvedRefs', 'False'],
          ],
        },
      ],
      true,
    );
    await c.routeCondition(`${INFRA}/http-route-4`, unresolved, 'ResolvedRefs', 'False');
    t.pass('attachedRoutes');
  });

  await conf(
    'GatewayInvalidListenersUnsupportedProtocol',
    ['gateway-invalid-listeners-unsupported-protocol.yaml'],
    async (t) => {
      const only = `${INFRA}/gateway-only-unsupported-protocols`;
      await latest('gateways', only);
      await c.gatewayCondition(only, 'Accepted', 'False', 'ListenersNotValid');
      await c.listeners(
        only,
        [{ name: 'invalid', kinds: [], attachedRoutes: 0, conditions: [['Accepted', 'False', 'UnsupportedProtocol']] }],
        true,
      );
      const mixed = `${INFRA}/gateway-supported-and-unsupported-protocols`;
      await latest('gateways', mixed);
      await c.gatewayCondition(mixed, 'Accepted', 'True', 'ListenersNotValid');
      await c.listeners(
        mixed,
        [
          { name: 'http', kinds: ['HTTPRoute'], attachedRoutes: 0, conditions: [['Accepted', 'True', 'Accepted']] },
          { name: 'invalid', kinds: [], attachedRoutes: 0, conditions: [['Accepted', 'False', 'UnsupportedProtocol']] },
        ],
        true,
      );
      t.pass('UnsupportedProtocol');
    },
  );

  await conf('GatewayInvalidParametersRef', ['gateway-invalid-parameters-ref.yaml'], async (t) => {
    const gw = `${INFRA}/gateway-invalid-parameters-ref`;
    await latest('gateways', gw);
    await c.gatewayCondition(gw, 'Accepted', 'False', 'InvalidParameters');
    t.pass('InvalidParameters');
  });
}
