// The overlay node agent (`kdp node-agent --backend vxlan|auto`): a reconciler on the controller kernel reading
// Node objects. Each reconcile finds the underlay (the interface holding this node's InternalIP, or
// --underlay-iface), makes the VXLAN device kdp.<vni> match (created, fixed or re-created), publishes this
// node's VTEP (MAC derived from VNI + underlay IP, and the underlay IP) in its Node's annotations, plans every
// peer (src/node/overlay.ts: direct or VXLAN, or skipped with a reason) and applies the difference against the
// kernel's own entries: routes of proto 199, neighbours and FDB entries of kdp.<vni> (the agent's own device,
// so everything on it is its own), in one `bridge -batch` and one `ip -batch`. A restart or kill -9 therefore
// converges from whatever the kernel holds, with no stale entry and no duplicate.
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { KdpError, errorMessage, isKdpError } from '../common/errors.ts';
import { defaultExec } from '../common/exec-adapter.ts';
import type { Exec } from '../common/exec-adapter.ts';
import type { Logger } from '../common/log.ts';
import { silentLogger } from '../common/log.ts';
import type { Change, Reconciler } from '../k8s/controller.ts';
import type { StoreView } from '../k8s/store.ts';
import { tryParseIp } from '../ipam/ip.ts';
import { ROUTE_PROTO } from './agent.ts';
import {
  ANNOTATION_VTEP_MAC,
  ANNOTATION_VTEP_MAC_V6,
  DEFAULT_VNI,
  DEFAULT_VXLAN_PORT,
  VXLAN_OVERHEAD_V4,
  VXLAN_OVERHEAD_V6,
  deviceBatch,
  fdbBatch,
  findUnderlay,
  ipBatch,
  planOverlay,
  vtepAddress,
  vtepAnnotations,
  vxlanDevice,
  vxlanDevice6,
} from './overlay.ts';
import type { FdbEntry, LinkJson, Neighbour, OverlayPlan, OverlayRoute, Underlay } from './overlay.ts';

/** What the agent reads from and writes to the kernel (IpOverlayKernel; a fake in unit tests). */
export interface OverlayKernel {
  /** `ip -d -j addr show`: every link with its addresses and link details */
  links(): Promise<LinkJson[]>;
  /** routes of proto 199, both families; `dev` set only on routes through `device` or `device6` */
  routes(device: string, device6?: string): Promise<OverlayRoute[]>;
  neighbours(device: string): Promise<Neighbour[]>;
  fdb(device: string): Promise<FdbEntry[]>;
  ip(lines: readonly string[]): Promise<void>;
  bridge(lines: readonly string[]): Promise<void>;
}

/** Writes annotations on a Node (KubeNodeAnnotator in src/k8s/node-annotations.ts). */
export interface NodeAnnotator {
  annotate(node: string, annotations: Readonly<Record<string, string>>): Promise<void>;
}

interface RouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
}

/** The kernel of the namespace `ip` runs in; `argvPrefix` may wrap it (e.g. ['ip', 'netns', 'exec', NS]). */
export class IpOverlayKernel implements OverlayKernel {
  readonly #exec: Exec;
  readonly #prefix: readonly string[];
  constructor(exec: Exec = defaultExec, argvPrefix: readonly string[] = []) {
    this.#exec = exec;
    this.#prefix = argvPrefix;
  }

  async #json<T>(argv: readonly string[]): Promise<T[]> {
    const res = await this.#exec.run([...this.#prefix, ...argv]);
    return JSON.parse(res.stdout.trim() || '[]') as T[];
  }

  links(): Promise<LinkJson[]> {
    return this.#json<LinkJson>(['ip', '-d', '-j', 'addr', 'show']);
  }

  async routes(device: string, device6?: string): Promise<OverlayRoute[]> {
    const out: OverlayRoute[] = [];
    const fams = ['-4', '-6'] as const;
    const lists = await Promise.all(
      fams.map((fam) => this.#json<RouteJson>(['ip', fam, '-j', 'route', 'show', 'proto', String(ROUTE_PROTO)])),
    );
    for (const [i, fam] of fams.entries()) {
      for (const r of lists[i]!) {
        if (!r.gateway) continue;
        const dst = r.dst.includes('/') ? r.dst : `${r.dst}/${fam === '-4' ? 32 : 128}`;
        out.push({ dst, via: r.gateway, ...(r.dev === device || (r.dev && r.dev === device6) ? { dev: r.dev } : {}) });
      }
    }
    return out;
  }

  async neighbours(device: string): Promise<Neighbour[]> {
    const rows = await this.#json<{ dst: string; lladdr?: string }>(['ip', '-j', 'neigh', 'show', 'dev', device]);
    return rows.map((n) => ({ ip: n.dst, mac: n.lladdr?.toLowerCase() ?? '' }));
  }

  async fdb(device: string): Promise<FdbEntry[]> {
    const rows = await this.#json<{ mac: string; dst?: string }>(['bridge', '-j', 'fdb', 'show', 'dev', device]);
    return rows.filter((f) => f.dst !== undefined).map((f) => ({ mac: f.mac.toLowerCase(), dst: f.dst! }));
  }

  async ip(lines: readonly string[]): Promise<void> {
    if (lines.length > 0)
      await this.#exec.run([...this.#prefix, 'ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  async bridge(lines: readonly string[]): Promise<void> {
    if (lines.length > 0)
      await this.#exec.run([...this.#prefix, 'bridge', '-batch', '-'], { input: lines.join('\n') + '\n' });
  }
}

export interface OverlayAgentOptions {
  readonly nodeName: string;
  readonly backend: 'vxlan' | 'auto';
  readonly kernel: OverlayKernel;
  readonly vni?: number;
  readonly port?: number;
  /** default: the interface holding this node's InternalIP */
  readonly underlayIface?: string;
  /** Kubernetes mode: where this node's VTEP annotations go (manifests mode: none; they must be in the manifest) */
  readonly annotator?: NodeAnnotator;
  readonly registry?: Registry;
  readonly log?: Logger;
  /** called when the underlay's MTU is first known or changes (the conflist writer re-renders) */
  readonly onUnderlay?: () => void;
}

interface KernelState {
  readonly underlay: Underlay;
  readonly routes: readonly OverlayRoute[];
  readonly neighbours: readonly Neighbour[];
  readonly fdb: readonly FdbEntry[];
  readonly neighbours6: readonly Neighbour[];
  readonly fdb6: readonly FdbEntry[];
}

/** The vxlan / auto reconciler: run it on the controller kernel (src/k8s/controller.ts). */
export class OverlayAgent implements Reconciler {
  readonly name = 'node-agent';
  readonly kinds = ['Node'] as const;
  readonly #o: OverlayAgentOptions;
  readonly #log: Logger;
  readonly #vni: number;
  readonly #port: number;
  readonly #device: string;
  readonly #device6: string;
  readonly #peers: Gauge<'path'> | undefined;
  /** the reason each skipped peer was last reported with (a reason is logged once per change, not per reconcile) */
  readonly #reported = new Map<string, string>();
  #selfWarned = '';
  /** the kernel's entries as the last successful reconcile left them (undefined: read the kernel) */
  #applied: KernelState | undefined;
  syncs = 0;
  /** the underlay found by the last reconcile */
  underlay: Underlay | undefined;
  /** the plan the last successful reconcile applied */
  plan: OverlayPlan | undefined;

  constructor(opts: OverlayAgentOptions) {
    this.#o = opts;
    this.#log = opts.log ?? silentLogger;
    this.#vni = opts.vni ?? DEFAULT_VNI;
    this.#port = opts.port ?? DEFAULT_VXLAN_PORT;
    this.#device = vxlanDevice(this.#vni);
    this.#device6 = vxlanDevice6(this.#vni);
    this.#peers = opts.registry
      ? new Gauge({
          name: 'kdp_node_agent_peers',
          help: 'Peers of this node by path (direct host-gw route, vxlan, or skipped for a bad annotation or pod CIDR)',
          labelNames: ['path'],
          registers: [opts.registry],
        })
      : undefined;
  }

  get device(): string {
    return this.#device;
  }

  /**
   * The pods' MTU over this overlay: the underlay's minus the IPv4 VXLAN overhead (undefined before the first
   * reconcile). The IPv4 underlay is always there, and a pod link has one MTU: IPv6 pod traffic over kdp6.<vni>
   * (underlay - 70) fits it too, as long as the underlay carries 20 bytes more than this for IPv6 or the kernel
   * fragments the outer packet; flannel takes the minimum of both devices.
   */
  get overlayMtu(): number | undefined {
    return this.underlay ? this.underlay.mtu - VXLAN_OVERHEAD_V4 : undefined;
  }

  async reconcile(view: StoreView, changes: readonly Change[] = [], full = true): Promise<void> {
    try {
      await this.#reconcile(view, changes, full);
    } catch (err) {
      if (isKdpError(err) && err.code !== 'KDP_EXEC_FAILED' && err.code !== 'KDP_EXEC_TIMEOUT') throw err;
      throw new KdpError('KDP_NODE_AGENT', `syncing the ${this.#o.backend} overlay failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  async #reconcile(view: StoreView, changes: readonly Change[], full: boolean): Promise<void> {
    // The kernel is read on a full reconcile (the first, after a failure, the periodic resync) and when this
    // node's own object changed (its address names the underlay); in between, what the last reconcile left
    // is known, so a peer's change costs one apply (the kube-proxy partial sync).
    let state = this.#applied;
    if (full || !state || changes.some((c) => c.key === this.#o.nodeName)) state = await this.#readKernel(view);
    this.#applied = undefined; // unknown until the apply succeeds
    const underlay = state.underlay;
    const plan = planOverlay(this.#o.nodeName, view.list('Node'), {
      backend: this.#o.backend,
      vni: this.#vni,
      localSubnets: underlay.subnets,
      ipv6: underlay.ip6 !== undefined,
    });
    this.#report(plan);
    const bridgeLines = [
      ...fdbBatch(state.fdb, plan.fdb, this.#device),
      ...fdbBatch(state.fdb6, plan.fdb6, this.#device6),
    ];
    const ipLines = ipBatch(state, plan, this.#device, this.#device6);
    await Promise.all([this.#o.kernel.bridge(bridgeLines), this.#o.kernel.ip(ipLines)]);
    this.#applied = {
      underlay,
      routes: plan.routes,
      neighbours: plan.neighbours,
      fdb: plan.fdb,
      neighbours6: plan.neighbours6,
      fdb6: plan.fdb6,
    };
    this.plan = plan;
    this.syncs++;
    if (this.#peers) {
      this.#peers.set({ path: 'direct' }, plan.peers.filter((p) => p.path === 'direct').length);
      this.#peers.set({ path: 'vxlan' }, plan.peers.filter((p) => p.path === 'vxlan').length);
      this.#peers.set({ path: 'skipped' }, plan.skipped.length);
    }
    if (bridgeLines.length + ipLines.length > 0)
      this.#log.info(
        {
          changes: bridgeLines.length + ipLines.length,
          direct: plan.peers.filter((p) => p.path === 'direct').length,
          vxlan: plan.peers.filter((p) => p.path === 'vxlan').length,
          skipped: plan.skipped.length,
        },
        'overlay synced',
      );
  }

  /** Reads the kernel, finds the underlay, sets up the device and publishes this node's VTEP. */
  async #readKernel(view: StoreView): Promise<KernelState> {
    const k = this.#o.kernel;
    const self = view.get('Node', this.#o.nodeName);
    if (!self && !this.#o.underlayIface)
      throw new KdpError('KDP_NODE_UNDERLAY', `Node ${this.#o.nodeName} not found: its InternalIP names the underlay`);
    const ownIp = (family: 4 | 6) =>
      self?.addresses.find((a) => a.type === 'InternalIP' && tryParseIp(a.address)?.family === family)?.address;
    const internalIp = ownIp(4);
    const internalIp6 = ownIp(6);
    // every read at once (the device may not exist yet: then it has no neighbours or FDB entries)
    const [links, routes, neighbours, fdb, neighbours6, fdb6] = await Promise.all([
      k.links(),
      k.routes(this.#device, this.#device6),
      k.neighbours(this.#device).catch(() => []),
      k.fdb(this.#device).catch(() => []),
      k.neighbours(this.#device6).catch(() => []),
      k.fdb(this.#device6).catch(() => []),
    ]);
    const underlay = findUnderlay(links, {
      ...(this.#o.underlayIface ? { iface: this.#o.underlayIface } : {}),
      ...(internalIp ? { internalIp } : {}),
      ...(internalIp6 ? { internalIp6 } : {}),
    });
    if (typeof underlay === 'string') throw new KdpError('KDP_NODE_UNDERLAY', underlay);
    const mtuChanged = this.underlay?.mtu !== underlay.mtu;
    this.underlay = underlay;
    if (mtuChanged) this.#o.onUnderlay?.();
    const ownCidr = (family: 4 | 6) => self?.podCIDRs.find((c) => tryParseIp(c.split('/')[0] ?? '')?.family === family);
    const own4 = ownCidr(4);
    const own6 = ownCidr(6);
    const annotations = vtepAnnotations(this.#vni, underlay.ip, underlay.ip6);
    const device = deviceBatch(
      links.find((l) => l.ifname === this.#device),
      {
        name: this.#device,
        vni: this.#vni,
        port: this.#port,
        local: underlay.ip,
        underlay: underlay.iface,
        mtu: underlay.mtu - VXLAN_OVERHEAD_V4,
        mac: annotations[ANNOTATION_VTEP_MAC]!,
        ...(own4 ? { address: vtepAddress(own4) } : {}),
      },
    );
    // the IPv6 device: set up when the underlay has an IPv6 address, removed (with its entries) when not
    const link6 = links.find((l) => l.ifname === this.#device6);
    const device6 = underlay.ip6
      ? deviceBatch(link6, {
          name: this.#device6,
          family: 6,
          vni: this.#vni,
          port: this.#port,
          local: underlay.ip6,
          underlay: underlay.iface,
          mtu: underlay.mtu - VXLAN_OVERHEAD_V6,
          mac: annotations[ANNOTATION_VTEP_MAC_V6]!,
          ...(own6 ? { address: vtepAddress(own6) } : {}),
        })
      : link6
        ? [`link del ${this.#device6}`]
        : [];
    if (device.length + device6.length > 0) {
      await k.ip([...device, ...device6]);
      this.#log.info(
        { device: this.#device, underlay: underlay.iface, changes: [...device, ...device6] },
        'VXLAN device set up',
      );
    }
    if (self) await this.#publish(self.meta.annotations, annotations);
    // a (re)created device starts with no routes, neighbours or FDB entries of its own
    const fresh = device.some((l) => l.startsWith('link add'));
    const fresh6 = device6.length > 0 && device6.some((l) => l.startsWith('link add') || l.startsWith('link del'));
    return {
      underlay,
      routes: routes.filter((r) => !(fresh && r.dev === this.#device) && !(fresh6 && r.dev === this.#device6)),
      neighbours: fresh ? [] : neighbours,
      fdb: fresh ? [] : fdb,
      neighbours6: fresh6 ? [] : neighbours6,
      fdb6: fresh6 ? [] : fdb6,
    };
  }

  /** Puts this node's VTEP annotations on its Node when they differ (Kubernetes mode), else says once what is missing. */
  async #publish(have: Readonly<Record<string, string>>, want: Record<string, string>): Promise<void> {
    const differs = Object.entries(want).some(([key, v]) => have[key] !== v);
    if (!differs) {
      this.#selfWarned = '';
      return;
    }
    if (this.#o.annotator) {
      await this.#o.annotator.annotate(this.#o.nodeName, want);
      this.#log.info({ node: this.#o.nodeName, annotations: want }, 'VTEP annotations published');
      return;
    }
    const text = JSON.stringify(want);
    if (this.#selfWarned === text) return;
    this.#selfWarned = text;
    this.#log.warn(
      { node: this.#o.nodeName, annotations: want },
      "this Node's manifest lacks its VTEP annotations (no API to write them to): peers cannot reach it over VXLAN",
    );
  }

  /** Logs each skipped peer once per reason, and a peer that is no longer skipped once. */
  #report(plan: OverlayPlan): void {
    const now = new Map(plan.skipped.map((s) => [s.node, s.reason]));
    // a peer routed for one family but not the other is reported the same way, under its own key
    for (const p of plan.peers) if (p.unrouted) now.set(`${p.node} (partly)`, p.unrouted);
    for (const [node, reason] of now) {
      if (this.#reported.get(node) === reason) continue;
      this.#reported.set(node, reason);
      this.#log.warn({ code: 'KDP_NODE_PEER_SKIPPED', node, reason }, 'peer skipped');
    }
    for (const node of [...this.#reported.keys()]) {
      if (now.has(node)) continue;
      this.#reported.delete(node);
      const peer = plan.peers.find((p) => p.node === node);
      if (peer) this.#log.info({ node, path: peer.path }, 'peer no longer skipped');
    }
  }
}
