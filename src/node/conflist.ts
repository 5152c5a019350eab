// The network configuration list kdp writes for a runtime (kdp cni install --subnet, the node agent with
// --cni-conf-dir): kdp-bridge with kdp-host-local IPAM over the node's pod CIDRs, then kdp-portmap.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCidr } from '../ipam/ip.ts';
import type { Reconciler } from '../k8s/controller.ts';
import type { StoreView } from '../k8s/store.ts';
import { KdpError, errorMessage } from '../common/errors.ts';
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
  /**
   * a number, or a getter: the overlay's MTU, known once the agent found the underlay (undefined: not yet, and
   * nothing is written; the agent then asks this writer's controller for a full reconcile)
   */
  readonly mtu?: number | (() => number | undefined);
  readonly log?: Logger;
}

/**
 * Keeps CONF-DIR/10-<network>.conflist in step with this node's podCIDRs (as flannel writes its subnet file):
 * written atomically (temp file + rename) after the initial sync and whenever the podCIDRs change.
 */
/** Keeps the CNI configuration file in step with this node's podCIDRs: a reconciler on the controller kernel. */
export class ConflistWriter implements Reconciler {
  readonly name = 'conflist';
  readonly kinds = ['Node'] as const;
  readonly #opts: ConflistWriterOptions;
  writes = 0;

  constructor(opts: ConflistWriterOptions) {
    this.#opts = opts;
  }

  get path(): string {
    return join(this.#opts.confDir, `10-${this.#opts.network ?? 'kdp'}.conflist`);
  }

  /**
   * Writes the file (atomically, only when its text changes) from this node's podCIDRs. A node being deleted
   * keeps its pods' configuration; a write that fails (full disk) throws, so the kernel retries it.
   */
  reconcile(view: StoreView): void {
    const log = this.#opts.log ?? silentLogger;
    const podCidrs = view.get('Node', this.#opts.nodeName)?.podCIDRs ?? [];
    if (podCidrs.length === 0) {
      log.warn({ node: this.#opts.nodeName }, 'no podCIDRs on this node yet: no CNI configuration written');
      return;
    }
    const mtu = typeof this.#opts.mtu === 'function' ? this.#opts.mtu() : this.#opts.mtu;
    if (typeof this.#opts.mtu === 'function' && mtu === undefined) {
      // the overlay agent asks for a full reconcile of this writer once it has found the underlay
      log.debug({ node: this.#opts.nodeName }, 'overlay MTU not known yet: no CNI configuration written');
      return;
    }
    const text = renderConflist({
      network: this.#opts.network ?? 'kdp',
      bridge: this.#opts.bridge ?? 'kdp0',
      subnets: podCidrs,
      clusterCidrs: this.#opts.clusterCidrs ?? [],
      ...(mtu ? { mtu } : {}),
    });
    let current: string | undefined;
    try {
      current = readFileSync(this.path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === text) return;
    try {
      mkdirSync(this.#opts.confDir, { recursive: true });
      writeFileSync(`${this.path}.tmp`, text);
      renameSync(`${this.path}.tmp`, this.path);
    } catch (err) {
      throw new KdpError('KDP_NODE_AGENT', `writing ${this.path} failed: ${errorMessage(err)}`, { cause: err });
    }
    this.writes++;
    log.info({ path: this.path, podCIDRs: podCidrs }, 'CNI configuration written');
  }
}
