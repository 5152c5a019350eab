// The manifests source (the embedded default): a directory of YAML/JSON files holding the same kinds the
// Kubernetes source watches. Multi-document files and `kind: List` are accepted; legacy Endpoints become
// EndpointSlices; Services with selectors get EndpointSlices from the controller (endpoint-controller.ts).
// Changes are picked up by fs.watch plus a poll (fs.watch misses events on some filesystems), debounced.
// A file that does not parse is reported with file:line and the last good state of that file is kept;
// an invalid object is reported with file:line and skipped, the rest of its file still counts.
import { readdir, readFile, stat } from 'node:fs/promises';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { join, relative } from 'node:path';
import { LineCounter, isMap, isSeq, parseAllDocuments } from 'yaml';
import type { ClusterObject, EndpointSlice, Kind, Node, Pod, Service } from '../model/types.ts';
import { KINDS, keyOf } from '../model/types.ts';
import type { Logger } from '../common/log.ts';
import { KdpError, errorMessage } from '../common/errors.ts';
import type { ClusterSource } from './source.ts';
import { convertAny } from './convert.ts';
import type { Raw } from './convert.ts';
import { computeEndpointSlices } from './endpoint-controller.ts';
import { Store } from './store.ts';
import type { StoreListener } from './store.ts';

interface ManifestObject {
  readonly obj: ClusterObject;
  /** 1-based line of the document (or List item) it came from */
  readonly line: number;
  /** converted from a legacy Endpoints object */
  readonly fromEndpoints: boolean;
}

interface ManifestProblem {
  readonly line: number;
  readonly reason: string;
}

type ParsedManifest =
  | { readonly ok: true; readonly objects: readonly ManifestObject[]; readonly skipped: readonly ManifestProblem[] }
  | { readonly ok: false; readonly line: number; readonly reason: string };

/** Parses one file's text: a broken file is one result; invalid objects are listed as skipped. Pure. */
export function parseManifest(text: string): ParsedManifest {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: false });
  if (!Array.isArray(docs)) return { ok: true, objects: [], skipped: [] };
  for (const doc of docs) {
    const e = doc.errors[0];
    if (e)
      return {
        ok: false,
        line: e.linePos?.[0]?.line ?? lineCounter.linePos(e.pos[0]).line,
        reason: (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, ''),
      };
  }
  const objects: ManifestObject[] = [];
  const skipped: ManifestProblem[] = [];
  const take = (raw: unknown, line: number): void => {
    if (raw === null || raw === undefined) return;
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      skipped.push({ line, reason: 'a document must be a mapping (an API object)' });
      return;
    }
    const r = convertAny(raw as Raw);
    if (!r.ok) {
      const m = (raw as Raw).metadata as Raw | undefined;
      const what = `${String((raw as Raw).kind ?? '?')} ${typeof m?.namespace === 'string' ? `${m.namespace}/` : ''}${String(m?.name ?? '?')}`;
      skipped.push({ line, reason: `${what}: ${r.reason}` });
      return;
    }
    const fromEndpoints = (raw as Raw).kind === 'Endpoints';
    for (const obj of r.value) objects.push({ obj, line, fromEndpoints });
  };
  for (const doc of docs) {
    const docLine = lineCounter.linePos(doc.contents?.range?.[0] ?? doc.range[0]).line;
    let js: unknown;
    try {
      // throws for an alias without its anchor and for alias expansion beyond the bound (billion laughs)
      js = doc.toJS({ maxAliasCount: 1000 });
    } catch (err) {
      return { ok: false, line: docLine, reason: errorMessage(err) };
    }
    if (
      js !== null &&
      typeof js === 'object' &&
      !Array.isArray(js) &&
      typeof (js as Raw).kind === 'string' &&
      ((js as Raw).kind as string).endsWith('List') &&
      Array.isArray((js as Raw).items)
    ) {
      const itemsNode = isMap(doc.contents) ? doc.contents.get('items', true) : undefined;
      ((js as Raw).items as unknown[]).forEach((item, i) => {
        const node = isSeq(itemsNode)
          ? (itemsNode.items[i] as { range?: [number, number, number] } | undefined)
          : undefined;
        take(item, node?.range ? lineCounter.linePos(node.range[0]).line : docLine);
      });
    } else {
      take(js, docLine);
    }
  }
  return { ok: true, objects, skipped };
}

interface FileState {
  sig: string;
  objects: readonly ManifestObject[];
}

interface ManifestsSourceOptions {
  readonly dir: string;
  readonly log: Logger;
  /** poll fallback for fs.watch (default 500 ms) */
  readonly pollIntervalMs?: number;
  /** delay between a change notice and the reload, to batch editor writes (default 25 ms) */
  readonly debounceMs?: number;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

export class ManifestsSource implements ClusterSource {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #pollMs: number;
  readonly #debounceMs: number;
  readonly #store: Store;
  readonly #files = new Map<string, FileState>();
  readonly #dirty = new Set<string>();
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(opts: ManifestsSourceOptions) {
    this.#dir = opts.dir;
    this.#log = opts.log.child({ source: 'manifests', dir: opts.dir });
    this.#pollMs = opts.pollIntervalMs ?? 500;
    this.#debounceMs = opts.debounceMs ?? 25;
    this.#store = new Store({ log: this.#log });
  }

  watch(l: StoreListener): () => void {
    return this.#store.watch(l);
  }

  get view(): Store {
    return this.#store;
  }

  /** Loads the directory, delivers everything and marks every kind synced; then follows changes. */
  async start(): Promise<void> {
    try {
      const st = await stat(this.#dir);
      if (!st.isDirectory()) throw new Error('not a directory');
    } catch (err) {
      throw new KdpError('KDP_K8S_MANIFEST', `manifests directory ${this.#dir} cannot be read: ${errorMessage(err)}`, {
        cause: err,
        details: { dir: this.#dir },
      });
    }
    await this.#reload();
    for (const k of KINDS) this.#store.markSynced(k);
    if (this.#stopped) return;
    try {
      this.#watcher = watch(this.#dir, { recursive: true, persistent: false }, (_ev, file) => {
        if (file) this.#dirty.add(join(this.#dir, file.toString()));
        this.#schedule();
      });
      this.#watcher.on('error', (err) =>
        this.#log.warn({ err: errorMessage(err) }, 'fs.watch failed; relying on polling'),
      );
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, 'fs.watch unavailable; relying on polling');
    }
    this.#poll = setInterval(() => this.#schedule(), this.#pollMs);
    this.#poll.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#store.stop();
    this.#watcher?.close();
    if (this.#poll) clearInterval(this.#poll);
    if (this.#debounce) clearTimeout(this.#debounce);
    await this.#reloading?.catch(() => {});
  }

  #schedule(): void {
    if (this.#stopped || this.#debounce) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      if (this.#reloading) {
        this.#again = true;
        return;
      }
      this.#reloading = this.#reload()
        .catch((err) =>
          this.#log.error(
            { err: errorMessage(err), code: 'KDP_K8S_MANIFEST' },
            'reloading the manifests directory failed; keeping the last state',
          ),
        )
        .finally(() => {
          this.#reloading = undefined;
          if (this.#again) {
            this.#again = false;
            this.#schedule();
          }
        });
    }, this.#debounceMs);
  }

  async #listFiles(dir: string, out: string[]): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // editor swap files, .git
      const p = join(dir, e.name);
      if (e.isDirectory()) await this.#listFiles(p, out);
      else if ((e.isFile() || e.isSymbolicLink()) && MANIFEST_FILE.test(e.name)) out.push(p);
    }
  }

  async #reload(): Promise<void> {
    const paths: string[] = [];
    await this.#listFiles(this.#dir, paths);
    paths.sort();
    let changed = false;
    const present = new Set(paths);
    for (const p of [...this.#files.keys()]) {
      if (!present.has(p)) {
        this.#files.delete(p);
        changed = true;
      }
    }
    for (const p of paths) {
      let st;
      try {
        st = await stat(p);
      } catch {
        continue; // removed between readdir and stat: the next round sees it gone
      }
      const sig = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
      const prev = this.#files.get(p);
      if (prev && prev.sig === sig && !this.#dirty.has(p)) continue;
      this.#dirty.delete(p);
      let text: string;
      try {
        text = await readFile(p, 'utf8');
      } catch (err) {
        this.#log.warn(
          { file: relative(this.#dir, p), err: errorMessage(err), code: 'KDP_K8S_MANIFEST' },
          'cannot read manifest file; keeping its last good state',
        );
        continue;
      }
      const parsed = parseManifest(text);
      const file = relative(this.#dir, p);
      if (!parsed.ok) {
        this.#log.warn(
          { file, line: parsed.line, where: `${file}:${parsed.line}`, reason: parsed.reason, code: 'KDP_K8S_MANIFEST' },
          `${file}:${parsed.line}: ${parsed.reason}; keeping the last good state of this file`,
        );
        // remember the signature so the same broken content is reported once, not on every poll
        this.#files.set(p, { sig, objects: prev?.objects ?? [] });
        continue;
      }
      for (const s of parsed.skipped) {
        this.#log.warn(
          { file, line: s.line, where: `${file}:${s.line}`, reason: s.reason, code: 'KDP_K8S_INVALID_OBJECT' },
          `${file}:${s.line}: ${s.reason}; object skipped`,
        );
      }
      this.#files.set(p, { sig, objects: parsed.objects });
      changed = true;
    }
    if (changed && !this.#stopped) this.#publish();
  }

  /** Merges every file's objects, runs the EndpointSlice controller, hands the result to the store. */
  #publish(): void {
    const byKind = new Map<Kind, Map<string, ClusterObject>>(KINDS.map((k) => [k, new Map()]));
    const origin = new Map<string, string>();
    const explicitSlices: EndpointSlice[] = [];
    for (const [p, f] of this.#files) {
      const file = relative(this.#dir, p);
      for (const { obj, line } of f.objects) {
        const id = `${obj.kind}/${keyOf(obj.meta)}`;
        const first = origin.get(id);
        if (first !== undefined) {
          this.#log.warn(
            { file, line, where: `${file}:${line}`, first, code: 'KDP_K8S_MANIFEST' },
            `${file}:${line}: ${id} is already defined at ${first}; ignored`,
          );
          continue;
        }
        origin.set(id, `${file}:${line}`);
        if (obj.kind === 'EndpointSlice') explicitSlices.push(obj);
        else byKind.get(obj.kind)!.set(keyOf(obj.meta), obj);
      }
    }
    const slices = computeEndpointSlices(
      byKind.get('Service')!.values() as Iterable<Service>,
      byKind.get('Pod')!.values() as Iterable<Pod>,
      explicitSlices,
      byKind.get('Node')!.values() as Iterable<Node>,
    );
    const sliceMap = byKind.get('EndpointSlice')!;
    for (const s of slices) sliceMap.set(keyOf(s.meta), s);
    for (const kind of KINDS) this.#store.replace(kind, byKind.get(kind)!.values());
  }
}
