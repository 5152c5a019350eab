// The host-local compatible IPAM verbs. Used as the kdp-host-local plugin and, in-process, by
// kdp-bridge when its ipam.type is kdp-host-local (one Node start per ADD instead of two).
import { accessSync, constants, mkdirSync } from 'node:fs';
import { KdpError } from '../common/errors.ts';
import type { PluginVerbs } from '../cnispec/skel.ts';
import { NO_TRACE } from '../cnispec/trace.ts';
import type { Trace } from '../cnispec/trace.ts';
import type { Attachment, CniRequest, CniResult } from '../cnispec/types.ts';
import { allocate, collect, ownedBy, release } from './allocator.ts';
import { loadIpamConfig } from './config.ts';
import { DiskStore } from './disk-store.ts';
import type { IpStore } from './store.ts';
import type { Locker } from '../common/flock.ts';

async function withLock<T>(store: IpStore, fn: () => Promise<T>, trace: Trace = NO_TRACE): Promise<T> {
  await trace.span('ipam lock', store.lock());
  try {
    return await fn();
  } finally {
    await store.unlock();
    trace.mark('ipam unlocked');
  }
}

function storeFor(
  req: CniRequest,
  locker: Locker | undefined,
): { store: DiskStore; cfg: ReturnType<typeof loadIpamConfig> } {
  const cfg = loadIpamConfig(req.config, req.args);
  return { store: new DiskStore(cfg.dataDir, cfg.name, locker), cfg };
}

export async function ipamAdd(req: CniRequest, locker?: Locker): Promise<CniResult> {
  const { store, cfg } = storeFor(req, locker);
  const ips = await withLock(store, () => allocate(cfg, store, req.containerId, req.ifname), req.trace);
  return { cniVersion: req.cniVersion, ips, routes: cfg.routes, dns: {} };
}

export async function ipamDel(req: CniRequest, locker?: Locker): Promise<string[]> {
  const { store } = storeFor(req, locker);
  return withLock(store, () => release(store, req.containerId, req.ifname), req.trace);
}

export async function ipamCheck(req: CniRequest, locker?: Locker): Promise<void> {
  const { store } = storeFor(req, locker);
  const mine = await withLock(store, async () =>
    (await store.allocations()).filter((a) => ownedBy(a, req.containerId, req.ifname)),
  );
  if (mine.length === 0)
    throw new KdpError('KDP_CNI_FAILED', `failed to find address added by container ${req.containerId}`);
}

export function validAttachments(config: Readonly<Record<string, unknown>>): Attachment[] {
  const v = config['cni.dev/valid-attachments'] ?? config['cni.dev/attachments'];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new KdpError('KDP_CNI_INVALID_CONFIG', 'cni.dev/valid-attachments must be a list');
  return v.map((a: unknown, i) => {
    if (typeof a !== 'object' || a === null || Array.isArray(a))
      throw new KdpError('KDP_CNI_INVALID_CONFIG', `cni.dev/valid-attachments[${i}] must be an object`);
    const { containerID, ifname } = a as { containerID?: unknown; ifname?: unknown };
    return { containerID: String(containerID ?? ''), ifname: String(ifname ?? '') };
  });
}

export async function ipamGc(req: CniRequest, locker?: Locker): Promise<string[]> {
  const { store } = storeFor(req, locker);
  return withLock(store, () => collect(store, validAttachments(req.config)));
}

export async function ipamStatus(req: CniRequest, locker?: Locker): Promise<void> {
  const { store } = storeFor(req, locker);
  try {
    mkdirSync(store.dir, { recursive: true });
    accessSync(store.dir, constants.W_OK);
  } catch (err) {
    throw new KdpError(
      'KDP_CNI_NOT_AVAILABLE',
      `IPAM data directory ${store.dir} is not writable: ${(err as Error).message}`,
    );
  }
}

/** The kdp-host-local plugin's verbs; `locker` = the warm server's lock agents (default: a `flock` fork per call). */
export function createHostLocalVerbs(locker?: Locker): PluginVerbs {
  return {
    add: (req) => ipamAdd(req, locker),
    del: async (req) => void (await ipamDel(req, locker)),
    check: (req) => ipamCheck(req, locker),
    gc: async (req) => void (await ipamGc(req, locker)),
    status: (req) => ipamStatus(req, locker),
  };
}

export const hostLocalVerbs: PluginVerbs = createHostLocalVerbs();
