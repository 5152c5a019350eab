// Userspace mode: an in-process TCP and UDP load balancer. Every service port gets a "portal" (a listener on
// an ephemeral port) and, when it has a NodePort, a listener on that port on every node address. With root,
// ClusterIP traffic reaches the portal through nft `redirect` rules in table `kdp-userspace` (and services
// without endpoints are REJECTed there); without root only the NodePorts are served, so `kdp up` works
// unprivileged. Client source IPs are not preserved (the proxy opens its own connection to the endpoint).
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { createSocket } from 'node:dgram';
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
}

/** One service port's listeners and balancers. */
class Portal {
  readonly cluster = new Balancer();
  readonly external = new Balancer();
  portal: Listener | undefined;
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

function listenUdp(host: string, port: number, bal: Balancer, family: IPFamily): Promise<Listener & { prune(): void }> {
  const type = family === 'IPv4' ? 'udp4' : 'udp6';
  const sock: UdpSocket = createSocket({ type, reuseAddr: false });
  const sessions = new Map<string, { up: UdpSocket; target: Target; last: number }>();
  const drop = (k: string) => {
    const s = sessions.get(k);
    if (!s) return;
    sessions.delete(k);
    s.up.close();
  };
  sock.on('message', (msg, rinfo) => {
    const k = `${rinfo.address}|${rinfo.port}`;
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
  sock.on('error', () => {});
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const [k, s] of sessions) if (now - s.last > UDP_IDLE_MS) drop(k);
  }, 5000);
  sweeper.unref();
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: host, port }, () => {
      sock.off('error', reject);
      resolve({
        port: sock.address().port,
        /** sessions whose endpoint left: the UDP equivalent of a conntrack flush */
        prune() {
          const alive = new Set(bal.targets().map((t) => `${t.ip}|${t.port}`));
          for (const [k, s] of sessions) if (!alive.has(`${s.target.ip}|${s.target.port}`)) drop(k);
        },
        close: async () => {
          clearInterval(sweeper);
          for (const k of [...sessions.keys()]) drop(k);
          await new Promise<void>((r) => sock.close(() => r()));
        },
      });
    });
  });
}

/** nft script for the redirect rules (root only). Pure. */
export function renderRedirects(
  portals: readonly { info: ServicePortInfo; port?: number; hasEndpoints: boolean }[],
  family: 'ip' | 'ip6',
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
  for (const p of portals) {
    if (p.info.family !== (family === 'ip' ? 'IPv4' : 'IPv6')) continue;
    const proto = p.info.protocol.toLowerCase();
    for (const vip of [p.info.clusterIP, ...p.info.externalIPs, ...p.info.loadBalancerIPs]) {
      const match = `${family} daddr ${vip} ${proto} dport ${p.info.port}`;
      if (p.hasEndpoints && p.port !== undefined) {
        out.push(
          `add rule ${T} nat-prerouting ${match} redirect to :${p.port}`,
          `add rule ${T} nat-output ${match} redirect to :${p.port}`,
        );
      } else {
        for (const c of ['filter-output', 'filter-forward', 'filter-input'])
          out.push(`add rule ${T} ${c} ${match} reject`);
      }
    }
  }
  return out;
}

export class UserspaceBackend implements ProxyBackend {
  readonly mode = 'userspace';
  readonly #exec: Exec;
  readonly #log: Logger;
  readonly #privileged: boolean;
  readonly #portals = new Map<string, Portal & { udpPrune?: () => void; udpPruneNp?: () => void }>();

  constructor(opts: { exec: Exec; log: Logger; privileged: boolean }) {
    this.#exec = opts.exec;
    this.#log = opts.log;
    this.#privileged = opts.privileged;
  }

  async #open(p: Portal, port: number, bal: Balancer): Promise<Listener & { prune?: () => void }> {
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
        if (this.#privileged && !p.portal) {
          const l = await this.#open(p, 0, p.cluster);
          p.portal = l;
          p.udpPrune = l.prune;
        }
        p.udpPrune?.();
        // NodePort: listen only while there is somewhere to send the traffic (else: connection refused)
        const npWanted = sp.nodePort !== undefined && extEps.length > 0 ? sp.nodePort : undefined;
        if (p.nodePort && p.nodePort.port !== npWanted) {
          await p.nodePort.l.close();
          p.nodePort = undefined;
          p.udpPruneNp = undefined;
        }
        if (npWanted !== undefined && !p.nodePort) {
          const l = await this.#open(p, npWanted, p.external);
          p.nodePort = { port: npWanted, l };
          p.udpPruneNp = l.prune;
        }
        p.udpPruneNp?.();
      } catch (err) {
        problems.push(`${sp.id}: ${errorMessage(err)}`);
      }
    }
    let lines = 0;
    if (this.#privileged) {
      const list = [...this.#portals.values()].map((p) => ({
        info: p.info,
        ...(p.portal ? { port: p.portal.port } : {}),
        hasEndpoints: p.cluster.size > 0,
      }));
      const script = [
        ...renderRedirects(list, 'ip'),
        ...(list.some((p) => p.info.family === 'IPv6') ? renderRedirects(list, 'ip6') : []),
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

  async cleanup(): Promise<void> {
    for (const f of ['ip', 'ip6'])
      await this.#exec.run(['nft', 'delete', 'table', f, USERSPACE_TABLE], { allowFailure: true });
  }

  async close(): Promise<void> {
    for (const p of this.#portals.values()) {
      await p.portal?.close();
      await p.nodePort?.l.close();
    }
    this.#portals.clear();
  }
}
