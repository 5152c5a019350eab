// Node annotation writer for Kubernetes mode: the overlay agent publishes its VTEP (MAC, public IP) on its own
// Node through CoreV1Api.patchNode as a JSON merge patch of metadata.annotations (only the keys given change;
// RBAC: nodes patch). The agent reaches it through its NodeAnnotator port (same shape, declared in
// src/node/overlay-agent.ts; src/k8s imports nothing of src/node).
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { KdpError, errorMessage } from '../common/errors.ts';

interface NodeAnnotationPort {
  annotate(node: string, annotations: Readonly<Record<string, string>>): Promise<void>;
}

export class KubeNodeAnnotator implements NodeAnnotationPort {
  readonly #api: CoreV1Api;
  constructor(kubeConfig: KubeConfig) {
    this.#api = kubeConfig.makeApiClient(CoreV1Api);
  }

  async annotate(node: string, annotations: Readonly<Record<string, string>>): Promise<void> {
    try {
      await this.#api.patchNode(
        { name: node, body: { metadata: { annotations: { ...annotations } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      const code = (err as { code?: number }).code;
      throw new KdpError(
        'KDP_K8S_API',
        `PATCH annotations of Node ${node} failed${code ? ` (${code})` : ''}: ${errorMessage(err).slice(0, 200)}`,
        { cause: err, details: { node, status: code } },
      );
    }
  }
}
