// Synthetic clusters for the proxy benchmarks: N ClusterIP services x E endpoints (pods on two nodes).
import type { EndpointSlice, Service } from '../../src/model/types.ts';
import { testService } from '../../src/model/testing/builders.ts';
import { buildServicePorts } from '../../src/proxy/model.ts';
import type { ServicePortInfo } from '../../src/proxy/model.ts';

export function clusterIP(i: number): string {
  return `10.96.${(i >> 8) & 255}.${i & 255}`;
}

export function service(i: number, name = `svc${i}`, ip = clusterIP(i)): Service {
  const { selector: _none, ...svc } = testService('bench', name, {
    clusterIPs: [ip],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
  });
  return { ...svc, meta: { ...svc.meta, uid: `u${i}` } };
}

export function slice(svcName: string, ips: string[], gen = 0): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    meta: {
      namespace: 'bench',
      name: `${svcName}-s`,
      uid: `s-${svcName}`,
      resourceVersion: String(gen),
      labels: {},
      annotations: {},
    },
    serviceName: svcName,
    addressType: 'IPv4',
    endpoints: ips.map((ip, k) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${(k % 2) + 1}`,
    })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

/** Endpoint IPs of service i (generation g shifts them, for "one service changed"). */
export function endpointIPs(i: number, e: number, g = 0): string[] {
  // 198.19.0.0/16 for the first 65,536 (as before), then 198.20/16, ...: distinct up to 50k services x 2
  return Array.from({ length: e }, (_, k) => {
    const x = i * e + k + g * 7;
    return `198.${19 + (x >> 16)}.${(x >> 8) & 255}.${x & 255 || 1}`;
  });
}

export function ports(n: number, e: number, changed?: { index: number; gen: number }): ServicePortInfo[] {
  const svcs: Service[] = [];
  const slices = new Map<string, EndpointSlice[]>();
  for (let i = 0; i < n; i++) {
    const s = service(i);
    svcs.push(s);
    const g = changed && changed.index === i ? changed.gen : 0;
    slices.set(`bench/${s.meta.name}`, [slice(s.meta.name, endpointIPs(i, e, g), g)]);
  }
  return buildServicePorts(svcs, slices, { nodeName: 'node-1', family: 'IPv4' });
}
