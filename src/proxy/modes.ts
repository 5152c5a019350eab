// The proxy modes (a module of its own so the CLI can name them without loading the proxy).
export const MODES = ['nftables', 'iptables', 'userspace'] as const;
export type ProxyMode = (typeof MODES)[number];
