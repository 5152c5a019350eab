// The one entry point the components' CLI commands use to get cluster state: a manifests directory when
// one is given, otherwise the Kubernetes API (--kubeconfig, KUBECONFIG, ~/.kube/config, or in-cluster).
// The Kubernetes client library is loaded only when the API is used (it costs ~1 s of start-up CPU).
import type { Logger } from '../common/log.ts';
import type { ClusterSource } from './source.ts';
import { ManifestsSource } from './manifests-source.ts';
import { Store } from './store.ts';
import type { StoreListener } from './store.ts';

interface OpenSourceOptions {
  readonly manifestsDir?: string;
  readonly kubeconfig?: string;
  readonly inCluster?: boolean;
  readonly log: Logger;
}

/** A KubeSource built on start(): loading the configuration throws KdpError KDP_K8S_CONFIG there. */
class LazyKubeSource implements ClusterSource {
  readonly #opts: OpenSourceOptions;
  // the store exists before the client is loaded, so consumers can register and read it before start()
  readonly #store: Store;
  #source: ClusterSource | undefined;

  constructor(opts: OpenSourceOptions) {
    this.#opts = opts;
    this.#store = new Store({ log: opts.log.child({ source: 'kubernetes' }) });
  }

  watch(l: StoreListener): () => void {
    return this.#store.watch(l);
  }

  get view(): Store {
    return this.#store;
  }

  async start(): Promise<void> {
    const { KubeSource, loadKubeConfig } = await import('./kube-source.ts');
    const kubeConfig = loadKubeConfig({
      ...(this.#opts.kubeconfig ? { kubeconfig: this.#opts.kubeconfig } : {}),
      ...(this.#opts.inCluster ? { inCluster: true } : {}),
    });
    const source = new KubeSource({ kubeConfig, log: this.#opts.log, store: this.#store });
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
