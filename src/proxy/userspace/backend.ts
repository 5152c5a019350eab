// Userspace mode: an in-process TCP and UDP load balancer. Every service port gets a "portal" (a listener on
// an ephemeral port) and, when it has a NodePort, a listener on that port on every node address. With root,
// ClusterIP traffic reaches the portal through nft `redirect` rules in table `kdp-userspace` (and services
// without endpoints are REJECTed there); without root only the NodePorts are served, so `kdp up` works
// unprivileged. Client source IPs are not preserved (the proxy opens its own connection to the endpoint).
// externalTrafficPolicy Local: external IPs and load-balancer IPs of such a service get a second portal that
// balances over the node's endpoints only; the node's own and its pods' traffic to them goes to the cluster
// portal (as kube-proxy short-circuits it), other traffic to them is dropped when the node has no endpoint.
// UDP replies must leave from the address the request was redirected to (127.0.0.1 from the node itself, the
// incoming interface's address from a pod): conntrack then turns them back into ClusterIP:port, which is what a
// connected client accepts. So a UDP listener binds every local address of the node besides the wildcard.
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import type { Socket as UdpSocket } from 'node:dgram';
import { KdpError, errorMessage } from '../../common/errors.ts';
import type { Exec } from '../../common/exec-adapter.ts';
import type { Logger } from '../../common/log.ts';
import type { IPFamily } from '../../model/types.ts';
import type { ProxyBackend, SyncResult } from '../backend.ts';
import type { ProxyEndpoint, ServicePortInfo } from '../model.ts';
import { Balancer } from './balancer.ts';
import type { Target } from './balancer.ts';

const USERSPACE_TABLE = 'kdp-userspace';
const CONNECT_TIMEOUT_MS = 1000;
const UDP_IDLE_MS = 30_000;

interface Listener {
  readonly port: number;
  close(): Promise<void>;
  /** UDP: sessions whose endpoint left are dropped (the UDP equivalent of a conntrack flush) */
  prune?(): void;
  /** UDP: binds addresses the node gained since the last call */
  refresh?(): Promise<void>;
}

/** The node's addresses of a family that a socket can bind without a scope (IPv6 link-local ones cannot). */
export function localAddresses(family: IPFamily): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) {
      if (a.family !== (family === 'IPv4' ? 'IPv4' : 'IPv6')) continue;
      if (family === 'IPv6' && /^fe80:/i.test(a.address)) continue;
      if (!out.includes(a.address)) out.push(a.address);
    }
  return out;
}

/** One service port's listeners and balancers. */
class Portal {
  readonly cluster = new Balancer();
  readonly external = new Balancer();
  portal: Listener | undefined;
  /** externalTrafficPolicy Local with external IPs or load-balancer IPs: the portal of the node-local endpoints */
  extPortal: Listener | undefined;
  nodePort: { port: number; l: Listener } | undefined;
  info: ServicePortInfo;
  constructor(info: ServicePortInfo) {
    this.info = info;
  }
}

const targets = (eps: readonly ProxyEndpoint[]): Target[] => eps.map((e) => ({ ip: e.ip, port: e.port }));

function listenTcp(host: string, port: number, bal: Balancer, log: Logger): Promise<Listener> {
  const sockets = new Set<Socket>();
  const srv: Server = createServer({ pauseOnConnect: true, noDelay: true }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    const clientIP = (client.remoteAddress ?? '').replace(/^::ffff:/, '');
    const cands = bal.candidates(clientIP);
    const attempt = (i: number): void => {
      const t = cands[i];
      if (t === undefined) {
        client.resetAndDestroy();
        return;
      }
      const up = connect({ host: t.ip, port: t.port, noDelay: true });
      sockets.add(up);
      up.on('close', () => sockets.delete(up));
      const timer = setTimeout(() => up.destroy(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
      up.once('connect', () => {
        clearTimeout(timer);
        bal.connected(clientIP, t);
        up.removeAllListeners('error');
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
      up.once('error', (err) => {
        clearTimeout(timer);
        log.debug(
          { endpoint: `${t.ip}:${t.port}`, err: err.message },
          'userspace: endpoint connect failed; trying the next',
        );
        up.destroy();
        if (!client.destroyed) attempt(i + 1);
      });
    };
    attempt(0);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port, ipv6Only: host.includes(':') }, () => {
      srv.off('error', reject);
      const addr = srv.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : port,
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            srv.close(() => r());
          }),
      });
    });
  });
}

function listenUdp(host: string, port: number, bal: Balancer, family: IPFamily): Promise<Listener> {
  const type = family === 'IPv4' ? 'udp4' : 'udp6';
  const sessions = new Map<string, { up: UdpSocket; target: Target; last: number }>();
  const socks = new Map<string, UdpSocket>();
  const drop = (k: string) => {
    const s = sessions.get(k);
    if (!s) return;
    sessions.delete(k);
    s.up.close();
  };
  // a reply goes out through the socket the request came in on: bound to one address, its source is that address
  const serve = (sock: UdpSocket, local: string) =>
    sock.on('message', (msg, rinfo) => {
      const k = `${local}|${rinfo.address}|${rinfo.port}`;
      let s = sessions.get(k);
      if (!s) {
        const t = bal.candidates(rinfo.address.replace(/^::ffff:/, ''))[0];
        if (!t) return;
        const up = createSocket(type);
        up.on('message', (reply) => {
          const cur = sessions.get(k);
          if (cur) cur.last = Date.now();
          sock.send(reply, rinfo.port, rinfo.address);
        });
        up.on('error', () => drop(k));
        s = { up, target: t, last: Date.now() };
        sessions.set(k, s);
        bal.connected(rinfo.address.replace(/^::ffff:/, ''), t);
      }
      s.last = Date.now();
      s.up.send(msg, s.target.port, s.target.ip);
    });
  const bind = (addr: string, p: number) =>
    new Promise<UdpSocket>((resolve, reject) => {
      const sock = createSocket({ type });
      sock.once('error', (err) => {
        sock.close();
        reject(err);
      });
      sock.bind({ address: addr, port: p }, () => {
        sock.removeAllListeners('error');
        sock.on('error', () => {});
        resolve(sock);
      });
    });
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const [k, s] of sessions) if (now - s.last > UDP_IDLE_MS) drop(k);
  }, 5000);
  sweeper.unref();
  const closeAll = async () => {
    await Promise.all([...socks.values()].map((sock) => new Promise<void>((r) => sock.close(() => r()))));
    socks.clear();
  };
  const wildcard = host === '0.0.0.0' || host === '::';
  let bound = port;
  const add = async (addr: string) => {
    const sock = await bind(addr, bound);
    if (bound === 0) bound = sock.address().port;
    socks.set(addr, sock);
    serve(sock, addr);
  };
  // No wildcard socket: every address gets its own (a wildcard one would answer from whatever address the route
  // to the client prefers). The first bind picks the port; should another address have it taken, start over.
  const open = async (): Promise<void> => {
    const addrs = wildcard ? localAddresses(family) : [host];
    for (let attempt = 0; ; attempt++) {
      try {
        for (const addr of addrs) await add(addr);
        return;
      } catch (err) {
        await closeAll();
        if (port !== 0 || attempt >= 4) throw err;
        bound = 0;
      }
    }
  };
  const refresh = async () => {
    if (!wildcard) return;
    for (const addr of localAddresses(family)) {
      if (socks.has(addr)) continue;
      try {
        await add(addr);
      } catch {
        // taken on that address by someone else, or gone meanwhile: that address is not served
      }
    }
  };
  return open().then(
    () => ({
      port: bound,
      refresh,
      prune() {
        const alive = new Set(bal.targets().map((t) => `${t.ip}|${t.port}`));
        for (const [k, s] of sessions) if (!alive.has(`${s.target.ip}|${s.target.port}`)) drop(k);
      },
      close: async () => {
        clearInterval(sweeper);
        for (const k of [...sessions.keys()]) drop(k);
        await closeAll();
      },
    }),
    (err: unknown) => {
      clearInterval(sweeper);
      throw err;
    },
  );
}

export interface RedirectPortal {
  readonly info: ServicePortInfo;
  /** the portal of the cluster-wide endpoints (absent: not listening) */
  readonly port?: number;
  readonly hasEndpoints: boolean;
  /** externalTrafficPolicy Local: the portal of the node-local endpoints, if the node has any */
  readonly extPort?: number;
}

/** nft script for the redirect rules (root only). Pure. `clusterCIDRs`: sources that are this node's pods. */
export function renderRedirects(
  portals: readonly RedirectPortal[],
  family: 'ip' | 'ip6',
  clusterCIDRs: readonly string[] = [],
): string[] {
  const T = `${family} ${USERSPACE_TABLE}`;
  const out = [
    `add table ${T}`,
    `flush table ${T}`,
    `add chain ${T} nat-prerouting { type nat hook prerouting priority -100; policy accept; }`,
    `add chain ${T} nat-output { type nat hook output priority -100; policy accept; }`,
    `add chain ${T} filter-output { type filter hook output priority -110; policy accept; }`,
    `add chain ${T} filter-forward { type filter hook forward priority -110; policy accept; }`,
    `add chain ${T} filter-input { type filter hook input priority -110; policy accept; }`,
  ];
  const cidrs = clusterCIDRs.filter((c) => (family === 'ip6') === c.includes(':'));
  for (const p of portals) {
    if (p.info.family !== (family === 'ip' ? 'IPv4' : 'IPv6')) continue;
    const proto = p.info.protocol.toLowerCase();
    const external = new Set([...p.info.externalIPs, ...p.info.loadBalancerIPs]);
    for (const vip of [p.info.clusterIP, ...external]) {
      const match = `${family} daddr ${vip} ${proto} dport ${p.info.port}`;
      if (!p.hasEndpoints || p.port === undefined) {
        for (const c of ['filter-output', 'filter-forward', 'filter-input'])
          out.push(`add rule ${T} ${c} ${match} reject`);
        continue;
      }
      if (!p.info.externalLocal || !external.has(vip)) {
        out.push(
          `add rule ${T} nat-prerouting ${match} redirect to :${p.port}`,
          `add rule ${T} nat-output ${match} redirect to :${p.port}`,
        );
        continue;
      }
      // externalTrafficPolicy Local: the node itself and its pods use every endpoint (kube-proxy's short-circuit);
      // the rest only this node's, and is dropped when it has none (after NAT: redirected packets no longer match)
      out.push(`add rule ${T} nat-output ${match} redirect to :${p.port}`);
      if (cidrs.length > 0)
        out.push(
          `add rule ${T} nat-prerouting ${family} saddr { ${cidrs.join(', ')} } ${match} redirect to :${p.port}`,
        );
      if (p.extPort !== undefined) out.push(`add rule ${T} nat-prerouting ${match} redirect to :${p.extPort}`);
      else for (const c of ['filter-forward', 'filter-input']) out.push(`add rule ${T} ${c} ${match} drop`);
    }
  }
  return out;
}

export class UserspaceBackend implements ProxyBackend {
  readonly mode = 'userspace';
  readonly #exec: Exec;
  readonly #log: Logger;
  readonly #privileged: boolean;
  readonly #clusterCIDRs: readonly string[];
  readonly #portals = new Map<string, Portal>();

  constructor(opts: { exec: Exec; log: Logger; privileged: boolean; clusterCIDRs?: readonly string[] }) {
    this.#exec = opts.exec;
    this.#log = opts.log;
    this.#privileged = opts.privileged;
    this.#clusterCIDRs = opts.clusterCIDRs ?? [];
  }

  async #open(p: Portal, port: number, bal: Balancer): Promise<Listener> {
    const host = p.info.family === 'IPv4' ? '0.0.0.0' : '::';
    return p.info.protocol === 'UDP'
      ? listenUdp(host, port, bal, p.info.family)
      : listenTcp(host, port, bal, this.#log);
  }

  async sync(models: ReadonlyMap<IPFamily, readonly ServicePortInfo[]>): Promise<SyncResult> {
    const want = new Map<string, ServicePortInfo>();
    for (const ports of models.values())
      for (const sp of ports) if (sp.protocol !== 'SCTP') want.set(`${sp.family}|${sp.id}|${sp.protocol}`, sp);
    for (const [k, p] of this.#portals) {
      if (want.has(k)) continue;
      this.#portals.delete(k);
      await p.portal?.close();
      await p.extPortal?.close();
      await p.nodePort?.l.close();
    }
    const problems: string[] = [];
    for (const [k, sp] of want) {
      let p = this.#portals.get(k);
      if (!p) {
        p = new Portal(sp);
        this.#portals.set(k, p);
      }
      p.info = sp;
      p.cluster.update(targets(sp.internalLocal ? sp.localEndpoints : sp.clusterEndpoints), sp.affinitySeconds);
      const extEps = sp.externalLocal ? sp.localEndpoints : sp.clusterEndpoints;
      p.external.update(targets(extEps), sp.affinitySeconds);
      try {
        if (this.#privileged && !p.portal) p.portal = await this.#open(p, 0, p.cluster);
        await p.portal?.refresh?.();
        p.portal?.prune?.();
        // external IPs and load-balancer IPs of a Local service from outside: this node's endpoints, if any
        const extWanted =
          this.#privileged &&
          sp.externalLocal &&
          sp.externalIPs.length + sp.loadBalancerIPs.length > 0 &&
          extEps.length > 0;
        if (p.extPortal && !extWanted) {
          await p.extPortal.close();
          p.extPortal = undefined;
        }
        if (extWanted && !p.extPortal) p.extPortal = await this.#open(p, 0, p.external);
        await p.extPortal?.refresh?.();
        p.extPortal?.prune?.();
        // NodePort: listen only while there is somewhere to send the traffic (else: connection refused)
        const npWanted = sp.nodePort !== undefined && extEps.length > 0 ? sp.nodePort : undefined;
        if (p.nodePort && p.nodePort.port !== npWanted) {
          await p.nodePort.l.close();
          p.nodePort = undefined;
        }
        if (npWanted !== undefined && !p.nodePort)
          p.nodePort = { port: npWanted, l: await this.#open(p, npWanted, p.external) };
        await p.nodePort?.l.refresh?.();
        p.nodePort?.l.prune?.();
      } catch (err) {
        problems.push(`${sp.id}: ${errorMessage(err)}`);
      }
    }
    let lines = 0;
    if (this.#privileged) {
      const list = [...this.#portals.values()].map((p): RedirectPortal => ({
        info: p.info,
        ...(p.portal ? { port: p.portal.port } : {}),
        ...(p.extPortal ? { extPort: p.extPortal.port } : {}),
        hasEndpoints: p.cluster.size > 0,
      }));
      const script = [
        ...renderRedirects(list, 'ip', this.#clusterCIDRs),
        ...(list.some((p) => p.info.family === 'IPv6') ? renderRedirects(list, 'ip6', this.#clusterCIDRs) : []),
      ];
      lines = script.length;
      await this.#exec.run(['nft', '-f', '-'], { input: script.join('\n') + '\n' });
    }
    if (problems.length > 0)
      throw new KdpError('KDP_PROXY_SYNC_FAILED', `userspace listeners failed: ${problems.join('; ')}`, {
        details: { problems },
      });
    return { lines };
  }

  /** The balancers of one service port (ClusterIP traffic, external traffic), as the last sync left them. */
  balancers(family: IPFamily, id: string, protocol: string): { cluster: Balancer; external: Balancer } | undefined {
    const p = this.#portals.get(`${family}|${id}|${protocol}`);
    return p ? { cluster: p.cluster, external: p.external } : undefined;
  }

  async cleanup(): Promise<void> {
    for (const f of ['ip', 'ip6'])
      await this.#exec.run(['nft', 'delete', 'table', f, USERSPACE_TABLE], { allowFailure: true });
  }

  async close(): Promise<void> {
    for (const p of this.#portals.values()) {
      await p.portal?.close();
      await p.extPortal?.close();
      await p.nodePort?.l.close();
    }
    this.#portals.clear();
  }
}
