// Isolation across IngressClasses (issue #9): an Ingress of another class never contributes a route, a
// default backend or a certificate, even when it names the same hosts and Secrets as ours, and a Secret is
// served only for the hosts of one of our Ingresses that lists it in spec.tls of its own namespace.
import t from 'tap';
import { compile } from '../../../ingress/compile.ts';
import type { ClusterState } from '../../../ingress/compile.ts';
import { findCert, normalizeHost, pathOf, resolve } from '../../../ingress/match.ts';
import type { Ingress, TlsSecret } from '../../../src/model/types.ts';
import { ingress, ingressClass, path, rule, service, tlsSecret } from '../../../ingress/testing/fixtures.ts';

const PEM = (n: string) => ({
  cert: `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`,
  key: `-----BEGIN PRIVATE KEY-----\n${n}\n-----END PRIVATE KEY-----\n`,
});

function state(ingresses: Ingress[], secrets: TlsSecret[]): ClusterState {
  const services = [service('ours'), service('theirs'), service('ours', 80, 'other'), service('theirs', 80, 'other')];
  return {
    ingresses,
    classes: [ingressClass('kdp', 'kdp.dev/ingress', false), ingressClass('nginx', 'k8s.io/ingress-nginx', true)],
    services: new Map(services.map((s) => [`${s.meta.namespace}/${s.meta.name}`, s])),
    slices: [],
    secrets: new Map(secrets.map((s) => [`${s.meta.namespace}/${s.meta.name}`, s])),
  };
}

t.test('another class never routes, defaults or serves a certificate', async (t) => {
  const secrets = [
    tlsSecret('ours-tls', PEM('ours').cert, PEM('ours').key),
    tlsSecret('theirs-tls', PEM('theirs').cert, PEM('theirs').key),
    tlsSecret('theirs-tls', PEM('other-ns').cert, PEM('other-ns').key, 'other'),
  ];
  const ings: Ingress[] = [
    ingress(
      'ours',
      [rule('shared.test', path('/', 'Prefix', 'ours'))],
      (i) => (i.tls = [{ hosts: ['shared.test'], secretName: 'ours-tls' }]),
    ),
    // another class: same host, a longer path, its own default backend and certificates for our host and its own
    ingress(
      'theirs',
      [rule('shared.test', path('/admin', 'Prefix', 'theirs')), rule('theirs.test', path('/', 'Prefix', 'theirs'))],
      (i) => {
        i.ingressClassName = 'nginx';
        i.defaultBackend = { service: { name: 'theirs', port: { number: 80 } } };
        i.tls = [{ hosts: ['shared.test', 'theirs.test', '*.wild.test'], secretName: 'theirs-tls' }];
      },
    ),
    // no class at all, while the cluster default class is nginx's: not ours either
    ingress('classless', [rule('classless.test', path('/', 'Prefix', 'theirs'))], (i) => {
      delete i.ingressClassName;
      i.tls = [{ hosts: ['classless.test'], secretName: 'theirs-tls' }];
    }),
    // ours, but pointing at a Secret of another namespace by name: the Secret of its own namespace is used
    ingress(
      'cross-ns',
      [rule('cross.test', path('/', 'Prefix', 'ours'))],
      (i) => (i.tls = [{ hosts: ['cross.test'], secretName: 'theirs-tls' }]),
      'other',
    ),
  ];
  const res = compile(state(ings, secrets), {
    controllerName: 'kdp.dev/ingress',
    className: 'kdp',
    watchWithoutClass: false,
  });
  t.same(res.accepted.toSorted(), ['default/ours', 'other/cross-ns'], 'only our class is accepted');
  const serve = (host: string, p: string) => {
    const r = resolve(res.table, normalizeHost(host), pathOf(p));
    return r.kind === 'route'
      ? r.match.route.upstream.service
      : r.kind === 'default'
        ? `default:${r.route.upstream.service}`
        : '404';
  };
  t.equal(serve('shared.test', '/admin'), 'ours', 'their longer path on a shared host is not merged into ours');
  t.equal(serve('theirs.test', '/'), '404', 'their host is not served');
  t.equal(serve('classless.test', '/'), '404', 'a class-less Ingress goes to the default class, not to us');
  t.equal(serve('nohost.test', '/'), '404', 'their defaultBackend is not our default');
  const cert = (h: string) => {
    const c = findCert(res.table, normalizeHost(h));
    return c ? c.certPem : 'none';
  };
  t.match(cert('shared.test'), /ours/, 'our host keeps our certificate');
  t.equal(cert('theirs.test'), 'none', 'their Secret is not served for their host');
  t.equal(cert('x.wild.test'), 'none', 'nor for their wildcard');
  t.equal(cert('classless.test'), 'none', 'nor for the class-less Ingress');
  t.match(cert('cross.test'), /other-ns/, 'a Secret is looked up in the Ingress namespace only');
  t.notMatch(cert('cross.test'), /theirs\n/, 'never the same-named Secret of another namespace');
});
