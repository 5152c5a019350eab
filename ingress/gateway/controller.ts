// The Gateway API reconciler on the controller kernel, next to the Ingress one in the same process (each has its
// own route tables: the Ingress ports serve the Ingress table, every Gateway (address, port) its own). Per
// reconcile: give every Gateway of ours an address (addresses.ts), compile (pure: gateway/compile.ts), bring the
// listening sockets in line (listeners.ts: open new, close gone, swap the tables of the others), overlay what
// the sockets said (a listener whose socket could not be opened is not Programmed) and, in Kubernetes mode,
// write the status of every GatewayClass, Gateway, HTTPRoute and GRPCRoute that changed. A listener that could
// not be opened fails the reconcile after everything else is in place, so the kernel retries it with backoff.
import type { Controller, Reconciler } from '../../src/k8s/controller.ts';
import type { ClusterSource } from '../../src/k8s/source.ts';
import type { StoreView } from '../../src/k8s/store.ts';
import type { Key } from '../../src/model/types.ts';
import { keyOf } from '../../src/model/types.ts';
import { KdpError } from '../../src/common/errors.ts';
import type { RunnerClock } from '../../src/common/runner.ts';
import type { Logger } from '../../src/common/log.ts';
import { silentLogger } from '../../src/common/log.ts';
import type { IngressMetrics } from '../metrics.ts';
import { KernelAttachment } from '../attachment.ts';
import { AddressPool, requestedAddress } from './addresses.ts';
import { compileGateways } from './compile.ts';
import { listenerId } from './listeners.ts';
import type { ApplyResult, GatewayListeners } from './listeners.ts';
import { GATEWAY_CONTROLLER_NAME } from './types.ts';
import type { Condition, GatewayCompileResult, GatewayStatus, RouteStatus } from './types.ts';

export type GatewayStatusKind = 'GatewayClass' | 'Gateway' | 'HTTPRoute' | 'GRPCRoute';

/** Writes the status of one Gateway API object (the Kubernetes adapter, src/k8s/gateway-status.ts). */
export interface GatewayStatusWriter {
  /**
   * `status` is the compiler's status of the object (GatewayClassStatus, GatewayStatus, RouteStatus); the
   * writer merges it into the object's status subresource.
   */
  write(kind: GatewayStatusKind, key: Key, status: object): Promise<void>;
}

export interface GatewayControllerOptions {
  readonly log?: Logger;
  readonly metrics?: IngressMetrics;
  /** the pool Gateways without spec.addresses get their address from */
  readonly pool?: AddressPool;
  readonly controllerName?: string;
  readonly status?: GatewayStatusWriter;
  readonly minIntervalMs?: number;
  readonly clock?: RunnerClock;
  /** delay before a failed status write is tried again (default 5 s) */
  readonly statusRetryMs?: number;
}

const KINDS = [
  'GatewayClass',
  'Gateway',
  'HTTPRoute',
  'GRPCRoute',
  'ReferenceGrant',
  'Service',
  'EndpointSlice',
  'Secret',
  'Namespace',
] as const;

/** The listener statuses of `gw` with the sockets' outcome laid over: a listener not open is not Programmed. */
function overlaySockets(
  gw: GatewayStatus,
  failed: ReadonlyMap<string, string>,
  names: ReadonlyMap<string, string>,
): GatewayStatus {
  let changed = false;
  const listeners = gw.listeners.map((l) => {
    const why = failed.get(names.get(l.name) ?? '');
    if (why === undefined) return l;
    changed = true;
    const conditions: Condition[] = l.conditions.map((c) =>
      c.type === 'Programmed'
        ? { ...c, status: 'False', reason: 'Pending', message: `the listening socket could not be opened: ${why}` }
        : c,
    );
    return { ...l, conditions };
  });
  return changed ? { ...gw, listeners } : gw;
}

export class GatewayController implements Reconciler {
  readonly name = 'gateway';
  readonly kinds = KINDS;
  readonly #listeners: GatewayListeners;
  readonly #log: Logger;
  readonly #metrics: IngressMetrics | undefined;
  readonly #pool: AddressPool;
  readonly #controllerName: string;
  readonly #status: GatewayStatusWriter | undefined;
  readonly #kernel: KernelAttachment;
  readonly #statusRetryMs: number;
  #version = 0;
  #lastWarnings = '';
  /** status last written (or being written) per object, as JSON */
  readonly #written = new Map<string, string>();
  /** the latest compile result, with the sockets' outcome laid over (undefined before the first reconcile) */
  result: GatewayCompileResult | undefined;
  /** the latest listener apply */
  sockets: ApplyResult | undefined;

  constructor(listeners: GatewayListeners, opts: GatewayControllerOptions = {}) {
    this.#listeners = listeners;
    this.#log = opts.log ?? silentLogger;
    this.#metrics = opts.metrics;
    this.#pool = opts.pool ?? new AddressPool();
    this.#controllerName = opts.controllerName ?? GATEWAY_CONTROLLER_NAME;
    this.#status = opts.status;
    this.#kernel = new KernelAttachment({
      log: this.#log,
      minIntervalMs: opts.minIntervalMs ?? 50,
      clock: opts.clock,
      metrics: opts.metrics,
    });
    this.#statusRetryMs = opts.statusRetryMs ?? 5000;
  }

  get ready(): boolean {
    return this.#kernel.ready;
  }

  whenReady(): Promise<void> {
    return this.#kernel.whenReady();
  }

  attach(source: Pick<ClusterSource, 'watch' | 'view'>): () => void {
    return this.#kernel.attach(source, this);
  }

  controllerStatus(): ReturnType<Controller['status']> | undefined {
    return this.#kernel.status();
  }

  stop(): void {
    clearTimeout(this.#retryTimer);
    this.#kernel.stop();
  }

  async reconcile(view: StoreView): Promise<void> {
    const classes = view.list('GatewayClass');
    const ours = new Set(classes.filter((c) => c.controllerName === this.#controllerName).map((c) => c.meta.name));
    const gateways = view.list('Gateway');
    const addresses = this.#pool.assign(
      gateways
        .filter((g) => ours.has(g.gatewayClassName))
        .map((g) => {
          const requested = requestedAddress(g);
          return { key: keyOf(g.meta), ...(requested === undefined ? {} : { requested }) };
        }),
    );
    const res = compileGateways(
      {
        classes,
        gateways,
        httpRoutes: view.list('HTTPRoute'),
        grpcRoutes: view.list('GRPCRoute'),
        referenceGrants: view.list('ReferenceGrant'),
        services: { get: (k) => view.get('Service', k) },
        slices: view.list('EndpointSlice'),
        secrets: { get: (k) => view.get('Secret', k) },
        namespaces: { get: (k) => view.get('Namespace', k) },
      },
      {
        controllerName: this.#controllerName,
        addressFor: (g) => {
          const a = addresses.get(keyOf(g.meta));
          return a?.ok ? a.address : undefined;
        },
        version: ++this.#version,
      },
    );
    const sockets = await this.#listeners.apply(res.listeners);
    this.sockets = sockets;
    // listener name -> socket id, per Gateway
    const ids = new Map<Key, Map<string, string>>();
    for (const t of res.listeners) {
      let m = ids.get(t.gateway);
      if (!m) ids.set(t.gateway, (m = new Map()));
      for (const name of t.listeners) m.set(name, listenerId(t));
    }
    const gatewaysStatus = res.status.gateways.map((g) =>
      overlaySockets(g, sockets.failed, ids.get(g.key) ?? new Map()),
    );
    this.result = { ...res, status: { ...res.status, gateways: gatewaysStatus } };
    const warn = JSON.stringify(res.warnings);
    if (warn !== this.#lastWarnings) {
      for (const w of res.warnings) this.#log.warn({ warning: w }, 'Gateway API object not served as written');
      this.#lastWarnings = warn;
    }
    this.#log.debug({ version: this.#version, listeners: sockets.serving.length }, 'gateway route tables installed');
    this.#metrics?.lastReloadTimestamp.set(Date.now() / 1000);
    this.#kernel.installed();
    this.#publish();
    if (sockets.failed.size > 0)
      throw new KdpError(
        'KDP_INGRESS_LISTEN',
        `gateway listeners not open: ${[...sockets.failed].map(([id, why]) => `${id} (${why})`).join(', ')}`,
        { details: { listeners: [...sockets.failed.keys()] } },
      );
  }

  #retryTimer: NodeJS.Timeout | undefined;
  /** A failed status write (conflict, API down) is retried by a full reconcile a few seconds later. */
  #retryStatus(): void {
    if (this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kernel.requestFull();
    }, this.#statusRetryMs);
    this.#retryTimer.unref();
  }

  /** Kubernetes mode: the status of every object whose status changed since it was last written. */
  #publish(): void {
    const writer = this.#status;
    const st = this.result?.status;
    if (!writer || !st) return;
    const all: [GatewayStatusKind, { key: Key }][] = [
      ...st.classes.map((s): [GatewayStatusKind, { key: Key }] => ['GatewayClass', s]),
      ...st.gateways.map((s): [GatewayStatusKind, { key: Key }] => ['Gateway', s]),
      ...st.httpRoutes.map((s: RouteStatus): [GatewayStatusKind, { key: Key }] => ['HTTPRoute', s]),
      ...st.grpcRoutes.map((s: RouteStatus): [GatewayStatusKind, { key: Key }] => ['GRPCRoute', s]),
    ];
    const live = new Set<string>();
    for (const [kind, s] of all) {
      const id = `${kind}/${s.key}`;
      live.add(id);
      const want = JSON.stringify(s);
      if (this.#written.get(id) === want) continue;
      this.#written.set(id, want);
      writer.write(kind, s.key, s).catch((err: unknown) => {
        if (this.#written.get(id) === want) this.#written.delete(id);
        this.#log.warn({ object: id, err: (err as Error).message }, 'status update failed; retried');
        this.#retryStatus();
      });
    }
    for (const id of this.#written.keys()) if (!live.has(id)) this.#written.delete(id);
  }
}
