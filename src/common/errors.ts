// One error hierarchy for kdp. Every error carries a stable code (documented in docs/errors.md,
// enforced by test/unit/common/errors.test.ts). Inner layers throw; only the top level logs.

export const ErrorCodes = {
  KDP_INTERNAL: 'an invariant was broken; a bug in kdp',
  KDP_USAGE: 'a command line that kdp cannot act on (unknown subcommand or flag, bad value)',
  KDP_EXEC_FAILED: 'an external command (ip, nft, iptables-restore, ...) exited non-zero or could not start',
  KDP_EXEC_TIMEOUT: 'an external command did not finish within its time limit',
  KDP_NOT_ROOT: 'the operation needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)',
  KDP_LAB_INVALID: 'a lab request that cannot be built (bad node count, name, address plan)',
  KDP_LAB_SETUP: 'building the lab of network namespaces failed; what was built was removed',
  KDP_CNI_INCOMPATIBLE_VERSION: 'CNI: the requested cniVersion is not supported (CNI code 1)',
  KDP_CNI_UNSUPPORTED_FIELD: 'CNI: a config field has a value the plugin does not support (CNI code 2)',
  KDP_CNI_UNKNOWN_CONTAINER: 'CNI: the container or its network namespace does not exist (CNI code 3)',
  KDP_CNI_INVALID_ENV: 'CNI: a required CNI_* environment variable is missing or invalid (CNI code 4)',
  KDP_CNI_IO: 'CNI: reading stdin or the IPAM data directory failed (CNI code 5)',
  KDP_CNI_DECODE: 'CNI: stdin is not valid JSON (CNI code 6)',
  KDP_CNI_INVALID_CONFIG: 'CNI: the network configuration is invalid (CNI code 7)',
  KDP_CNI_TRY_AGAIN: 'CNI: a transient failure, e.g. the IPAM lock was not obtained in time (CNI code 11)',
  KDP_CNI_NOT_AVAILABLE: 'CNI STATUS: the plugin cannot serve ADD now (CNI code 50)',
  KDP_CNI_FAILED:
    'CNI: the operation failed (interface exists, link or rule missing on CHECK, delegate failed) (CNI code 999)',
  KDP_IPAM_EXHAUSTED: 'IPAM: no free address left in a range set (CNI code 100)',
  KDP_IPAM_CONFLICT:
    'IPAM: the requested address is taken, is the gateway, or the attachment already holds an address (CNI code 101)',
  KDP_NODE_AGENT: 'node agent: programming host-gw routes or the overlay failed (retried)',
  KDP_NODE_UNDERLAY:
    'node agent (vxlan/auto): no underlay interface (none holds the InternalIP, --underlay-iface missing or without IPv4) (retried)',
  KDP_NODE_PEER_SKIPPED:
    'node agent: a peer Node skipped (no/malformed VTEP annotation, malformed or overlapping pod CIDR); logged, others unaffected',
  KDP_K8S_CONFIG: 'no usable kubeconfig or in-cluster service account to reach the Kubernetes API',
  KDP_K8S_API: 'a Kubernetes API request (list, watch) failed; the watch layer retries with backoff',
  KDP_K8S_MANIFEST: 'a manifests directory cannot be read or a file in it cannot be parsed (reported with file:line)',
  KDP_K8S_INVALID_OBJECT: 'an API object failed conversion to the model (bad IP, port, protocol, name); it is skipped',
  KDP_DNS_MALFORMED: 'a DNS message that does not parse (answered with FORMERR or dropped)',
  KDP_DNS_ENCODE: 'a DNS record that cannot be put on the wire (bad address, label over 63 octets)',
  KDP_DNS_CONFIG: 'a Corefile or dns flag that kdp dns cannot act on',
  KDP_DNS_UPSTREAM: 'no upstream DNS server answered (all down, timed out or gave a bad reply)',
  KDP_PROXY_SYNC_FAILED:
    'proxy: programming the rules (nft transaction, iptables-restore) failed; the next sync is a full one',
  KDP_PROXY_CONFIG: 'proxy: a kdp proxy flag or option that cannot be acted on (unknown mode, bad CIDR, bad interval)',
  // policy agent (issue #15)
  KDP_POLICY_SYNC_FAILED:
    'policy agent: rendering or applying the node policy table failed (retried in full with backoff; the table in the kernel stays as it was)',
  KDP_UP_MANIFESTS:
    'kdp up cannot build a lab from the manifests (no Node, or Nodes that do not match the lab address plan)',
  KDP_UP_FAILED: 'a component started by kdp up exited or did not become ready in time; everything was torn down',
  // ingress: Gateway API serving
  KDP_INGRESS_LISTEN:
    'ingress: a Gateway listener socket could not be opened (address not local, port taken); retried with backoff',
  KDP_INGRESS_CONFIG:
    'ingress: a kdp ingress flag or option that cannot be acted on (e.g. --tcp-io batch without the addon)',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

const brand = Symbol.for('kdp.error');

export class KdpError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    code: ErrorCode | (string & {}),
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KdpError';
    this.code = code;
    this.details = Object.freeze({ ...options?.details });
    Object.defineProperty(this, brand, { value: true });
  }

  // instanceof still works when two copies of this module are loaded (bundled CNI plugins + library)
  static override [Symbol.hasInstance](obj: unknown): boolean {
    return typeof obj === 'object' && obj !== null && (obj as Record<symbol, unknown>)[brand] === true;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, ...this.details };
  }
}

export function isKdpError(err: unknown, code?: string): err is KdpError {
  return err instanceof KdpError && (code === undefined || err.code === code);
}

/** The message of anything thrown, for logs and wrapped errors. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
