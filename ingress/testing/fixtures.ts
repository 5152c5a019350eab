// Builders of model objects for ingress tests (unit and e2e). Mutators adjust the defaults.
import { testService } from '../../src/model/testing/builders.ts';
import type {
  EndpointSlice,
  Ingress,
  IngressClass,
  IngressPath,
  IngressRule,
  ObjectMeta,
  PathType,
  Service,
  TlsSecret,
} from '../../src/model/types.ts';

function meta(namespace: string, name: string, annotations: Record<string, string> = {}): ObjectMeta {
  return { namespace, name, uid: `uid-${namespace}-${name}`, resourceVersion: '1', labels: {}, annotations };
}

export function path(p: string, pathType: PathType, service: string, port: number | string = 80): IngressPath {
  return {
    path: p,
    pathType,
    backend: { service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } },
  };
}

export function rule(host: string | undefined, ...paths: IngressPath[]): IngressRule {
  return host === undefined ? { paths } : { host, paths };
}

export function ingress(
  name: string,
  rules: IngressRule[],
  mut: (i: { -readonly [K in keyof Ingress]: Ingress[K] }) => void = () => {},
  namespace = 'default',
): Ingress {
  const i: { -readonly [K in keyof Ingress]: Ingress[K] } = {
    kind: 'Ingress',
    meta: meta(namespace, name),
    ingressClassName: 'kdp',
    rules,
    tls: [],
    loadBalancer: [],
  };
  mut(i);
  return i;
}

export function withAnnotations(ing: Ingress, a: Record<string, string>): Ingress {
  return { ...ing, meta: { ...ing.meta, annotations: { ...ing.meta.annotations, ...a } } };
}

export function ingressClass(name = 'kdp', controller = 'kdp.dev/ingress', isDefault = false): IngressClass {
  return { kind: 'IngressClass', meta: meta('', name), controller, isDefault };
}

export function service(name: string, port = 80, namespace = 'default', portName = ''): Service {
  return testService(namespace, name, { ports: [{ name: portName, protocol: 'TCP', port, targetPort: 8080 }] });
}

export function slice(
  svc: string,
  addresses: string[],
  port = 8080,
  namespace = 'default',
  portName = '',
  ready = true,
): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    meta: meta(namespace, `${svc}-abc`),
    serviceName: svc,
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready, serving: ready, terminating: false } })),
    ports: [{ name: portName, port, protocol: 'TCP' }],
  };
}

export function tlsSecret(name: string, certPem: string, keyPem: string, namespace = 'default'): TlsSecret {
  return { kind: 'Secret', meta: meta(namespace, name), certPem, keyPem };
}
