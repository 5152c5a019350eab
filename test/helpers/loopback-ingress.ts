// The ingress as the loopback e2e tests start it (ingress-front, ingress-proxy, ingress-h2): in-process, every
// port ephemeral on 127.0.0.1 (metrics included), the access log collected, closed at the test's teardown.
import type { Test } from 'tap';
import { startIngress } from '../../ingress/ingress.ts';
import type { IngressOptions } from '../../ingress/ingress.ts';
import type { ClusterSource } from '../../src/k8s/source.ts';
import { FakeSource } from '../../src/k8s/testing/fake-source.ts';
import { ingress, ingressClass, path, rule, service, slice } from '../../ingress/testing/fixtures.ts';

/** Cluster state with one route, host raw.test (prefix /) to Service raw, whose one endpoint is 127.0.0.1:`port`. */
export function rawRoute(port: number): FakeSource {
  const src = new FakeSource();
  src.put(ingressClass());
  src.put(service('raw'));
  src.put(slice('raw', ['127.0.0.1'], port));
  src.put(ingress('raw', [rule('raw.test', path('/', 'Prefix', 'raw'))]));
  return src;
}

export async function loopbackIngress(
  t: Test,
  src: ClusterSource,
  extra: Partial<IngressOptions> = {},
): Promise<{ ing: Awaited<ReturnType<typeof startIngress>>; logs: string[] }> {
  const logs: string[] = [];
  const ing = await startIngress(src, {
    httpPort: 0,
    httpsPort: 0,
    metricsPort: 0,
    bind: '127.0.0.1',
    accessLog: (s) => void logs.push(s),
    processMetrics: false,
    ...extra,
  });
  t.teardown(() => ing.close());
  return { ing, logs };
}
