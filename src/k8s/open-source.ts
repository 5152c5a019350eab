// The one entry point the components' CLI commands use to get cluster state: a manifests directory when
// one is given, otherwise the Kubernetes API (--kubeconfig, KUBECONFIG, ~/.kube/config, or in-cluster).
// The Kubernetes client library is loaded only when the API is used (it costs ~1 s of start-up CPU).
import type { Logger } from '../common/log.ts';
import type { ClusterSource, Handlers } from './handlers.ts';
import { ManifestsSource } from './manifests-source.ts';

export interface OpenSourceOptions {
  readonly manifestsDir?: string;
  readonly kubeconfig?: string;
  readonly inCluster?: boolean;
  readonly log: Logger;
}

/** A KubeSource built on start(): loading the configuration throws KdpError KDP_K8S_CONFIG there. */
class LazyKubeSource implements ClusterSource {
  readonly #opts: OpenSourceOptions;
  readonly #handlers = new Set<Handlers>();
  #source: ClusterSource | undefined;

  constructor(opts: OpenSourceOptions) {
    this.#opts = opts;
  }

  subscribe(h: Handlers): () => void {
    this.#handlers.add(h);
    const inner = this.#source?.subscribe(h);
    return () => {
      this.#handlers.delete(h);
      inner?.();
    };
  }

  async start(): Promise<void> {
    const { KubeSource, loadKubeConfig } = await import('./kube-source.ts');
    const kubeConfig = loadKubeConfig({
      ...(this.#opts.kubeconfig ? { kubeconfig: this.#opts.kubeconfig } : {}),
      ...(this.#opts.inCluster ? { inCluster: true } : {}),
    });
    const source = new KubeSource({ kubeConfig, log: this.#opts.log });
    for (const h of this.#handlers) source.subscribe(h);
    this.#source = source;
    await source.start();
  }

  async stop(): Promise<void> {
    await this.#source?.stop();
  }
}

export function openSource(opts: OpenSourceOptions): ClusterSource {
  if (opts.manifestsDir !== undefined && opts.manifestsDir !== '')
    return new ManifestsSource({ dir: opts.manifestsDir, log: opts.log });
  return new LazyKubeSource(opts);
}
