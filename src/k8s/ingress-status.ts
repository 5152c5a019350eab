// Ingress status writer for Kubernetes mode: status.loadBalancer.ingress of one Ingress, through the
// client library's NetworkingV1Api.patchNamespacedIngressStatus as a JSON merge patch (the status
// subresource; RBAC: ingresses/status patch). The ingress controller reaches it through its
// IngressStatusWriter port (same shape, declared here too so src/k8s imports nothing of ingress/).
import { NetworkingV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { KdpError, errorMessage } from '../common/errors.ts';

interface LoadBalancerIngress {
  readonly ip?: string;
  readonly hostname?: string;
}

interface IngressStatusPort {
  setLoadBalancer(namespace: string, name: string, ingress: readonly LoadBalancerIngress[]): Promise<void>;
}

/** The merge patch that sets status.loadBalancer.ingress (the list is replaced as a whole). */
function loadBalancerPatch(ingress: readonly LoadBalancerIngress[]): {
  status: { loadBalancer: { ingress: LoadBalancerIngress[] } };
} {
  return {
    status: {
      loadBalancer: {
        ingress: ingress.map((a) => ({
          ...(a.ip ? { ip: a.ip } : {}),
          ...(a.hostname ? { hostname: a.hostname } : {}),
        })),
      },
    },
  };
}

export class KubeIngressStatusWriter implements IngressStatusPort {
  readonly #api: NetworkingV1Api;
  constructor(kubeConfig: KubeConfig) {
    this.#api = kubeConfig.makeApiClient(NetworkingV1Api);
  }

  async setLoadBalancer(namespace: string, name: string, ingress: readonly LoadBalancerIngress[]): Promise<void> {
    try {
      await this.#api.patchNamespacedIngressStatus(
        { namespace, name, body: loadBalancerPatch(ingress) },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      const code = (err as { code?: number }).code;
      throw new KdpError(
        'KDP_K8S_API',
        `PATCH status of Ingress ${namespace}/${name} failed${code ? ` (${code})` : ''}: ${errorMessage(err).slice(0, 200)}`,
        { cause: err, details: { namespace, name, status: code } },
      );
    }
  }
}
