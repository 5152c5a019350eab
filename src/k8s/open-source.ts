// The one entry point the components' CLI commands use to get cluster state: a manifests directory when
// one is given, otherwise the Kubernetes API (--kubeconfig, KUBECONFIG, ~/.kube/config, or in-cluster).
import type { Logger } from '../common/log.ts';
import type { ClusterSource } from './handlers.ts';
import { ManifestsSource } from './manifests-source.ts';
import { KubeSource, loadKubeConfig } from './kube-source.ts';

export interface OpenSourceOptions {
  readonly manifestsDir?: string;
  readonly kubeconfig?: string;
  readonly inCluster?: boolean;
  readonly log: Logger;
}

/** Throws KdpError KDP_K8S_CONFIG when no manifests directory is given and no API configuration is found. */
export function openSource(opts: OpenSourceOptions): ClusterSource {
  if (opts.manifestsDir !== undefined && opts.manifestsDir !== '') return new ManifestsSource({ dir: opts.manifestsDir, log: opts.log });
  const kubeConfig = loadKubeConfig({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.inCluster ? { inCluster: true } : {}) });
  return new KubeSource({ kubeConfig, log: opts.log });
}
