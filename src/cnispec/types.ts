// CNI result and configuration shapes (CNI spec 1.1, "Result Types"). Plain data; no logic.
import type { Trace } from './trace.ts';

export interface CniInterface {
  readonly name: string;
  readonly mac?: string;
  readonly mtu?: number;
  /** netns path for interfaces inside the container; absent on the host */
  readonly sandbox?: string;
}

export interface CniIpConfig {
  readonly address: string;
  readonly gateway?: string;
  /** index into interfaces; absent in IPAM (abbreviated) results */
  readonly interface?: number;
}

export interface CniRoute {
  readonly dst: string;
  readonly gw?: string;
  readonly mtu?: number;
  readonly advmss?: number;
  readonly priority?: number;
  readonly table?: number;
  readonly scope?: number;
}

export interface CniDns {
  readonly nameservers?: readonly string[];
  readonly domain?: string;
  readonly search?: readonly string[];
  readonly options?: readonly string[];
}

export interface CniResult {
  readonly cniVersion?: string;
  readonly interfaces?: readonly CniInterface[];
  readonly ips?: readonly CniIpConfig[];
  readonly routes?: readonly CniRoute[];
  readonly dns?: CniDns;
}

export interface PortMapping {
  readonly hostPort: number;
  readonly containerPort: number;
  readonly protocol: 'tcp' | 'udp' | 'sctp';
  readonly hostIP?: string;
}

export interface Attachment {
  readonly containerID: string;
  readonly ifname: string;
}

/** The parameters of one plugin invocation: env (spec section 2) plus the config from stdin. */
export interface CniRequest {
  readonly command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC';
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** CNI_ARGS as key/value pairs */
  readonly args: Readonly<Record<string, string>>;
  readonly path: readonly string[];
  /** the whole plugin config object as received (with cniVersion, name, runtimeConfig, prevResult, ...) */
  readonly config: Readonly<Record<string, unknown>>;
  /** the raw stdin, forwarded unchanged to delegates */
  readonly stdin: string;
  readonly cniVersion: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** per-phase timing when KDP_CNI_TRACE is set (src/cnispec/trace.ts); absent = off */
  readonly trace?: Trace;
}
