// Gateway API status writer for Kubernetes mode: the status subresource of GatewayClass, Gateway, HTTPRoute and
// GRPCRoute through the client library's CustomObjectsApi (RBAC: <plural>/status get, patch). Per write: GET the
// object's status, merge ours into it (gatewayStatusPatch: conditions keep their lastTransitionTime while their
// status does not change; a route's parents written by other controllers are kept), and PATCH it as a JSON
// merge patch carrying the resourceVersion it was read at (a concurrent writer makes it a 409, retried by the
// caller) only when something changed. The ingress controller reaches it through its GatewayStatusWriter port
// (same shape, declared here too so src/k8s imports nothing of ingress/).
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { KdpError, errorMessage } from '../common/errors.ts';

type StatusKind = 'GatewayClass' | 'Gateway' | 'HTTPRoute' | 'GRPCRoute';

interface GatewayStatusPort {
  write(kind: StatusKind, key: string, status: object): Promise<void>;
}

const GROUP = 'gateway.networking.k8s.io';
const PLURAL: Readonly<Record<StatusKind, string>> = {
  GatewayClass: 'gatewayclasses',
  Gateway: 'gateways',
  HTTPRoute: 'httproutes',
  GRPCRoute: 'grpcroutes',
};

type Json = Record<string, unknown>;

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration: number;
  readonly lastTransitionTime?: string;
}

/** Ours, with lastTransitionTime: the one `current` has for the same type while the status is the same. */
function conditions(ours: readonly Condition[], current: unknown, now: string): Condition[] {
  const have = Array.isArray(current) ? (current as Condition[]) : [];
  return ours.map((c) => {
    const prev = have.find((h) => h?.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      observedGeneration: c.observedGeneration,
      lastTransitionTime: prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
    };
  });
}

const list = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);

/** Same parentRef (group, kind, namespace, name, sectionName, port; defaults filled in). */
function sameParent(a: Json, b: Json, routeNamespace: string): boolean {
  const norm = (p: Json) => [
    p.group ?? GROUP,
    p.kind ?? 'Gateway',
    p.namespace ?? routeNamespace,
    p.name,
    p.sectionName ?? '',
    p.port ?? '',
  ];
  return isDeepStrictEqual(norm(a), norm(b));
}

/**
 * The object's next status: `ours` (the compiler's status of it) merged into `current` (its status now). Pure;
 * `now` is the RFC 3339 time stamped on conditions that changed.
 */
export function gatewayStatusPatch(
  kind: StatusKind,
  current: Json | undefined,
  ours: Json,
  controllerName: string,
  namespace: string,
  now: string,
): Json {
  const cur = current ?? {};
  if (kind === 'GatewayClass')
    return { ...cur, conditions: conditions(ours.conditions as Condition[], cur.conditions, now) };
  if (kind === 'Gateway') {
    const curListeners = list(cur.listeners);
    return {
      ...cur,
      addresses: ours.addresses,
      conditions: conditions(ours.conditions as Condition[], cur.conditions, now),
      listeners: list(ours.listeners).map((l) => ({
        name: l.name,
        supportedKinds: l.supportedKinds,
        attachedRoutes: l.attachedRoutes,
        conditions: conditions(
          l.conditions as Condition[],
          curListeners.find((c) => c.name === l.name)?.conditions,
          now,
        ),
      })),
    };
  }
  // routes: the parents other controllers wrote stay as they are; ours are replaced by the compiler's
  const curParents = list(cur.parents);
  const others = curParents.filter((p) => p.controllerName !== controllerName);
  const mine = list(ours.parents).map((p) => {
    const prev = curParents.find(
      (c) =>
        c.controllerName === controllerName && sameParent((c.parentRef ?? {}) as Json, p.parentRef as Json, namespace),
    );
    return {
      parentRef: p.parentRef,
      controllerName,
      conditions: conditions(p.conditions as Condition[], prev?.conditions, now),
    };
  });
  return { ...cur, parents: [...others, ...mine] };
}

export class KubeGatewayStatusWriter implements GatewayStatusPort {
  readonly #api: CustomObjectsApi;
  readonly #controllerName: string;
  readonly #now: () => Date;
  constructor(kubeConfig: KubeConfig, controllerName: string, now: () => Date = () => new Date()) {
    this.#api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#controllerName = controllerName;
    this.#now = now;
  }

  async write(kind: StatusKind, key: string, status: object): Promise<void> {
    const plural = PLURAL[kind];
    const namespaced = kind !== 'GatewayClass';
    const slash = key.indexOf('/');
    const namespace = namespaced ? key.slice(0, slash) : '';
    const name = namespaced ? key.slice(slash + 1) : key;
    const id = { group: GROUP, version: 'v1', plural, name };
    const step = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
      try {
        return await call();
      } catch (err) {
        const code = (err as { code?: number }).code;
        throw new KdpError(
          'KDP_K8S_API',
          `${what} status of ${kind} ${key} failed${code ? ` (${code})` : ''}: ${errorMessage(err).slice(0, 200)}`,
          { cause: err, details: { kind, key, status: code } },
        );
      }
    };
    const obj = (await step('GET', () =>
      namespaced
        ? this.#api.getNamespacedCustomObjectStatus({ ...id, namespace })
        : this.#api.getClusterCustomObjectStatus(id),
    )) as Json;
    const md = (obj.metadata ?? {}) as Json;
    const current = obj.status as Json | undefined;
    // the time is second-precision RFC 3339, as the API server keeps it
    const now = this.#now()
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
    const next = gatewayStatusPatch(kind, current, status as Json, this.#controllerName, namespace, now);
    if (isDeepStrictEqual(next, current)) return;
    const body = { metadata: { resourceVersion: md.resourceVersion }, status: next };
    const opts = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await step('PATCH', () =>
      namespaced
        ? this.#api.patchNamespacedCustomObjectStatus({ ...id, namespace, body }, opts)
        : this.#api.patchClusterCustomObjectStatus({ ...id, body }, opts),
    );
  }
}
