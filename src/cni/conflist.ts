// The network configuration list kdp writes for a runtime (kdp cni install --subnet, the node agent with
// --cni-conf-dir): kdp-bridge with kdp-host-local IPAM over the node's pod CIDRs, then kdp-portmap.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCidr } from '../ipam/ip.ts';
import type { Node } from '../model/types.ts';
import type { NodeHandler } from '../k8s/handlers.ts';
import type { Logger } from '../common/log.ts';
import { silentLogger } from '../common/log.ts';

/** The conflist text. Pure, so it is unit-tested. */
export function renderConflist(o: {
  network: string;
  bridge: string;
  subnets: readonly string[];
  clusterCidrs: readonly string[];
  dataDir?: string;
  mtu?: number;
}): string {
  for (const c of [...o.subnets, ...o.clusterCidrs]) parseCidr(c);
  return (
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        cniVersions: ['1.0.0', '1.1.0'],
        name: o.network,
        plugins: [
          {
            type: 'kdp-bridge',
            bridge: o.bridge,
            isDefaultGateway: true,
            ipMasq: true,
            hairpinMode: true,
            ...(o.mtu ? { mtu: o.mtu } : {}),
            ...(o.clusterCidrs.length > 0 ? { clusterCIDRs: o.clusterCidrs } : {}),
            ipam: {
              type: 'kdp-host-local',
              ranges: o.subnets.map((s) => [{ subnet: s }]),
              ...(o.dataDir ? { dataDir: o.dataDir } : {}),
            },
          },
          { type: 'kdp-portmap', capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    ) + '\n'
  );
}

export interface ConflistWriterOptions {
  readonly nodeName: string;
  readonly confDir: string;
  readonly network?: string;
  readonly bridge?: string;
  readonly clusterCidrs?: readonly string[];
  readonly mtu?: number;
  readonly log?: Logger;
}

/**
 * Keeps CONF-DIR/10-<network>.conflist in step with this node's podCIDRs (as flannel writes its subnet file):
 * written atomically (temp file + rename) after the initial sync and whenever the podCIDRs change.
 */
export class ConflistWriter implements NodeHandler {
  readonly #opts: ConflistWriterOptions;
  #podCidrs: readonly string[] = [];
  #synced = false;
  writes = 0;

  constructor(opts: ConflistWriterOptions) {
    this.#opts = opts;
  }

  get path(): string {
    return join(this.#opts.confDir, `10-${this.#opts.network ?? 'kdp'}.conflist`);
  }

  onNodeAdd(node: Node): void {
    this.#see(node);
  }
  onNodeUpdate(_old: Node, cur: Node): void {
    this.#see(cur);
  }
  onNodeDelete(): void {
    // a node being deleted keeps its pods' configuration until it is gone; nothing to write
  }
  onNodesSynced(): void {
    this.#synced = true;
    this.#write();
  }

  #see(node: Node): void {
    if (node.meta.name !== this.#opts.nodeName) return;
    this.#podCidrs = node.podCIDRs;
    if (this.#synced) this.#write();
  }

  #write(): void {
    const log = this.#opts.log ?? silentLogger;
    if (this.#podCidrs.length === 0) {
      log.warn({ node: this.#opts.nodeName }, 'no podCIDRs on this node yet: no CNI configuration written');
      return;
    }
    const text = renderConflist({
      network: this.#opts.network ?? 'kdp',
      bridge: this.#opts.bridge ?? 'kdp0',
      subnets: this.#podCidrs,
      clusterCidrs: this.#opts.clusterCidrs ?? [],
      ...(this.#opts.mtu ? { mtu: this.#opts.mtu } : {}),
    });
    let current: string | undefined;
    try {
      current = readFileSync(this.path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === text) return;
    mkdirSync(this.#opts.confDir, { recursive: true });
    writeFileSync(`${this.path}.tmp`, text);
    renameSync(`${this.path}.tmp`, this.path);
    this.writes++;
    log.info({ path: this.path, podCIDRs: this.#podCidrs }, 'CNI configuration written');
  }
}
