// Shared pieces of the CNI e2e tests and the benchmark: fresh plugin builds, Node objects, small waits.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Node } from '../../model/types.ts';
import type { Conflist } from '../../cnispec/runtime.ts';

/** Builds the plugin bundles into a fresh temp dir (each test file its own: no races with parallel files). */
export async function freshPlugins(): Promise<string> {
  const { buildPlugins } = await import('../../../cni-plugins/build.ts');
  const dir = mkdtempSync(join(tmpdir(), 'kdp-cni-bin-'));
  await buildPlugins(dir);
  return dir;
}

export function makeNode(name: string, podCIDRs: readonly string[], ips: readonly string[]): Node {
  return {
    kind: 'Node',
    meta: { namespace: '', name, uid: `uid-${name}`, resourceVersion: '1', labels: {}, annotations: {} },
    podCIDRs,
    addresses: ips.map((address) => ({ type: 'InternalIP', address })),
    ready: true,
  };
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A one-plugin kdp-bridge conflist (gateway, masquerade) with host-local IPAM over one subnet in `dataDir`. */
export function bridgeConflist(name: string, subnet: string, bridge: string, dataDir: string): Conflist {
  return {
    cniVersion: '1.1.0',
    name,
    plugins: [
      {
        type: 'kdp-bridge',
        bridge,
        isGateway: true,
        ipMasq: true,
        ipam: { type: 'kdp-host-local', ranges: [[{ subnet }]], dataDir },
      },
    ],
  };
}

/**
 * kdp-bridge (default gateway, masquerade, hairpin) with dual-stack host-local IPAM over `subnets`, then
 * kdp-portmap: the chain the hostPort and hairpin e2e tests run.
 */
export function hairpinConflist(
  name: string,
  bridge: string,
  subnets: readonly [string, string],
  clusterCIDRs: readonly string[],
  dataDir: string,
): Conflist {
  return {
    cniVersion: '1.1.0',
    name,
    plugins: [
      {
        type: 'kdp-bridge',
        bridge,
        isDefaultGateway: true,
        ipMasq: true,
        hairpinMode: true,
        clusterCIDRs: [...clusterCIDRs],
        ipam: { type: 'kdp-host-local', ranges: [[{ subnet: subnets[0] }], [{ subnet: subnets[1] }]], dataDir },
      },
      { type: 'kdp-portmap', capabilities: { portMappings: true } },
    ],
  };
}

/** The reservation files (one per allocated address) of network `net` under `dataDir`. */
export function reservationFiles(dataDir: string, net: string): string[] {
  try {
    return readdirSync(join(dataDir, net)).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
  } catch {
    return [];
  }
}
