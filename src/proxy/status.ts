// The proxy's answer to `kdp status` (the status interface of src/model/status.ts): its service ports with
// their endpoints and the nft chain of each, and, when the node's nft table was read, how many backends that
// chain (or the shared ClusterIP endpoint maps) balances over in the kernel. Pure.
import type { EndpointSlice } from '../model/types.ts';
import { LABEL_TOPOLOGY_ZONE } from '../model/types.ts';
import type { ComponentStatus } from '../model/status.ts';
import { buildServicePorts } from './model.ts';
import { chainNames, programmedBackends } from './nftables/render.ts';

export interface EndpointStatus {
  readonly address: string;
  /** ready | serving-terminating | terminating | not-ready */
  readonly state: string;
  readonly node?: string;
}

export interface ProxyPortStatus {
  readonly namespace: string;
  readonly name: string;
  /** '' when the service has one unnamed port */
  readonly portName: string;
  readonly protocol: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly nodePort?: number;
  readonly endpoints: readonly EndpointStatus[];
  /** the nft chain of this service port; programmedBackends: its backends as found in the kernel (undefined: not checked) */
  readonly rule: { readonly chain: string; readonly programmedBackends?: number };
}

/** nft `list table` text -> chain name -> number of endpoints it balances over (the renderer knows the rule forms). */
export function nftBackends(tableText: string): Map<string, number> {
  return programmedBackends(tableText);
}

/**
 * ClusterIP-only service ports have no chain of their own: their endpoints are elements `vip . port . index`
 * of the shared `cluster-endpoints-<proto>` maps. `<proto> <vip> <port>` -> number of endpoints.
 */
export function nftClusterMapBackends(tableText: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of tableText.matchAll(/^\s*map cluster-endpoints-(\w+) \{([\s\S]*?)^\s*\}/gm)) {
    for (const e of (m[2] ?? '').matchAll(/([0-9a-fA-F:.]+) \. (\d+) \. \d+ :/g)) {
      const k = `${m[1]} ${e[1]} ${e[2]}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
  }
  return out;
}

function bySvc(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const m = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const k = `${s.meta.namespace}/${s.serviceName}`;
    m.set(k, [...(m.get(k) ?? []), s]);
  }
  return m;
}

export const status: ComponentStatus<readonly ProxyPortStatus[]> = (input) => {
  const slices = bySvc(input.cluster.endpointSlices);
  const programmed = input.nftTable === undefined ? undefined : nftBackends(input.nftTable);
  const viaMaps = input.nftTable === undefined ? undefined : nftClusterMapBackends(input.nftTable);
  // the node's zone, as its proxy matches topology hints against it
  const zone = input.cluster.nodes.find((n) => n.meta.name === input.nodeName)?.meta.labels[LABEL_TOPOLOGY_ZONE];
  const opts = { nodeName: input.nodeName, ...(zone ? { zone } : {}) };
  const ports = [
    ...buildServicePorts(input.cluster.services, slices, { family: 'IPv4', ...opts }),
    ...buildServicePorts(input.cluster.services, slices, { family: 'IPv6', ...opts }),
  ];
  return ports.map((sp) => {
    const chain = chainNames(sp).service;
    const found = programmed?.get(chain) ?? viaMaps?.get(`${sp.protocol.toLowerCase()} ${sp.clusterIP} ${sp.port}`);
    return {
      namespace: sp.namespace,
      name: sp.name,
      portName: sp.portName,
      protocol: sp.protocol,
      clusterIP: sp.clusterIP,
      port: sp.port,
      ...(sp.nodePort !== undefined ? { nodePort: sp.nodePort } : {}),
      endpoints: sp.endpoints.map((e) => ({
        address: `${e.ip}:${e.port}`,
        state: e.ready
          ? 'ready'
          : e.serving && e.terminating
            ? 'serving-terminating'
            : e.terminating
              ? 'terminating'
              : 'not-ready',
      })),
      rule: programmed === undefined ? { chain } : { chain, programmedBackends: found ?? 0 },
    };
  });
};
