// The smallest manifests an ingress test or benchmark needs: IngressClass `kdp`, a Service whose one endpoint is a
// backend on 127.0.0.1:<port>, and an Ingress routing every path of one host to it.
export function oneRouteManifests(name: string, host: string, backendPort: number): object {
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: 'kdp' },
        spec: { controller: 'kdp.dev/ingress' },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'default' },
        spec: { ports: [{ port: 80, protocol: 'TCP' }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
        ports: [{ name: '', port: backendPort, protocol: 'TCP' }],
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: { name, namespace: 'default' },
        spec: {
          ingressClassName: 'kdp',
          rules: [
            {
              host,
              http: {
                paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name, port: { number: 80 } } } }],
              },
            },
          ],
        },
      },
    ],
  };
}
