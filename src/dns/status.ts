// Cluster DNS's answer to `kdp status` (the status interface of src/model/status.ts): the names each service
// port answers to, and the services only DNS serves (headless: the ready endpoint addresses, or all with
// publishNotReadyAddresses; ExternalName: a CNAME). Pure.
import { keyOf } from '../model/types.ts';
import type { EndpointSlice } from '../model/types.ts';
import type { ComponentStatus } from '../model/status.ts';

export interface DnsOnlyStatus {
  readonly service: string;
  readonly kind: 'headless' | 'ExternalName';
  readonly dns: string;
  readonly answers: readonly string[];
}

export interface DnsStatus {
  /** `namespace/name/portName/protocol` -> the names that port answers to: the service name, then the SRV name of a named port */
  readonly portNames: ReadonlyMap<string, readonly string[]>;
  readonly dnsOnly: readonly DnsOnlyStatus[];
}

export function portKey(namespace: string, name: string, portName: string, protocol: string): string {
  return `${namespace}/${name}/${portName}/${protocol}`;
}

export const status: ComponentStatus<DnsStatus> = (input) => {
  const slices = new Map<string, EndpointSlice[]>();
  for (const s of input.cluster.endpointSlices) {
    const k = `${s.meta.namespace}/${s.serviceName}`;
    slices.set(k, [...(slices.get(k) ?? []), s]);
  }
  const portNames = new Map<string, string[]>();
  const dnsOnly: DnsOnlyStatus[] = [];
  for (const svc of input.cluster.services) {
    const fqdn = `${svc.meta.name}.${svc.meta.namespace}.svc.${input.zone}`;
    for (const p of svc.ports)
      portNames.set(portKey(svc.meta.namespace, svc.meta.name, p.name, p.protocol), [
        fqdn,
        ...(p.name ? [`_${p.name}._${p.protocol.toLowerCase()}.${fqdn} (SRV)`] : []),
      ]);
    if (svc.type === 'ExternalName' && svc.externalName)
      dnsOnly.push({
        service: keyOf(svc.meta),
        kind: 'ExternalName',
        dns: fqdn,
        answers: [`CNAME ${svc.externalName}`],
      });
    else if (svc.headless) {
      const answers: string[] = [];
      for (const s of slices.get(keyOf(svc.meta)) ?? [])
        for (const e of s.endpoints)
          if (e.conditions.ready || svc.publishNotReadyAddresses)
            answers.push(...e.addresses.slice(0, 1).map((a) => (e.hostname ? `${a} (${e.hostname}.${fqdn})` : a)));
      dnsOnly.push({ service: keyOf(svc.meta), kind: 'headless', dns: fqdn, answers: answers.sort() });
    }
  }
  return { portNames, dnsOnly };
};
