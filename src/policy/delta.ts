// The difference between two renderings of the policy table, as one nft transaction (pure). renderNft gives a
// script that replaces the whole table (`table T {}` / `delete table T` / `table T { ... }`); re-creating a
// table of 1,000 policies costs nft far more than the few objects one change touches. When the agent knows the
// table in the kernel is exactly its last script (its last transaction went through), it sends only this:
//
//   flush chain                           the changed chains (small: a pod's verdict steps)
//   delete element                        what changed sets and maps lost (a map's jumps to chains that go away)
//   table T { ... }                       new objects and the flushed chains' rules, verbatim from the new script
//                                         (block syntax adds to the existing table)
//   add element                           what changed sets and maps gained (after the chains they jump to exist)
//   delete map / chain / set / counter    the objects the new script no longer has (nothing refers to them now)
//
// A concatenated interval set with many changed elements is instead re-created: the chains using it are flushed,
// it is deleted and declared again with its elements in the block, and the chains' rules follow it there.
//
// All in one transaction, so a packet sees the old table or the new one, never a mix. Anything this cannot
// express (a different table header or comment, a changed set type or chain hook) returns undefined: the agent
// then applies the full script. The renderer (nft.ts renderTable) builds the same parsed form directly from its
// per-pod parts, so the agent diffs two renderings with deltaTables without writing or parsing a script; objects
// a change did not touch are the same strings on both sides (compared by reference first).

/** One top-level object of the table block: `set NAME { ... }` and its lines. */
export interface Item {
  readonly kind: 'set' | 'map' | 'chain' | 'counter' | 'comment';
  readonly name: string;
  readonly text: string;
  /** every line but the elements: must match for an element-wise update of a set or map */
  readonly head: string;
  /** set and map elements, one per line as renderNft writes them (no trailing comma) */
  readonly elements: readonly string[];
}

export interface Parsed {
  readonly table: string;
  readonly items: ReadonlyMap<string, Item>;
  readonly order: readonly string[];
}

const ITEM = /^\t(set|map|chain|counter) (\S+) \{$/;

function item(kind: Item['kind'], name: string, body: readonly string[]): Item {
  const head: string[] = [];
  const elements: string[] = [];
  for (let j = 0; j < body.length; j++) {
    const b = body[j]!;
    if ((kind === 'set' || kind === 'map') && b === '\t\telements = {') {
      for (j++; j < body.length && body[j] !== '\t\t}'; j++) elements.push(body[j]!.trim().replace(/,$/, ''));
      continue;
    }
    head.push(b);
  }
  return { kind, name, text: body.join('\n'), head: head.join('\n'), elements };
}

/** A set or map as renderNft writes it: `headLines` are its type/flags lines (with their two tabs). */
export function blockItem(
  kind: 'set' | 'map',
  name: string,
  headLines: readonly string[],
  elements: readonly string[],
): Item {
  const open = `\t${kind} ${name} {`;
  let text: string | undefined;
  return {
    kind,
    name,
    // written when read (a full script, a new set): a difference reads the elements
    get text() {
      text ??= [
        open,
        ...headLines,
        ...(elements.length > 0 ? ['\t\telements = {', ...elements.map((e) => `\t\t\t${e},`), '\t\t}'] : []),
        '\t}',
      ].join('\n');
      return text;
    },
    head: [open, ...headLines, '\t}'].join('\n'),
    elements,
  };
}

/** Whether two items are the same object text (sets and maps: the same head and elements, in order). */
function sameItem(o: Item, n: Item): boolean {
  if (o === n) return true;
  if ((o.kind === 'set' || o.kind === 'map') && o.kind === n.kind) {
    if (o.head !== n.head || o.elements.length !== n.elements.length) return false;
    if (o.elements === n.elements) return true;
    for (let i = 0; i < o.elements.length; i++) if (o.elements[i] !== n.elements[i]) return false;
    return true;
  }
  return o.text === n.text;
}

/** A chain or counter block (no elements: its head is its text). */
export function plainItem(kind: 'chain' | 'counter', name: string, text: string): Item {
  return { kind, name, text, head: text, elements: [] };
}

/** Parses renderNft's layout: the one `table inet T {` block, one tab per level. undefined: not that layout. */
export function parseTable(script: string): Parsed | undefined {
  const lines = script.split('\n');
  const start = lines.findIndex((l) => /^table inet \S+ \{$/.test(l));
  if (start < 0) return undefined;
  const table = /^table inet (\S+) \{$/.exec(lines[start]!)![1]!;
  const items = new Map<string, Item>();
  const order: string[] = [];
  let i = start + 1;
  for (; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === '}') break;
    if (l === '') continue;
    if (/^\tcomment /.test(l)) {
      items.set('comment', { kind: 'comment', name: '', text: l, head: l, elements: [] });
      continue;
    }
    const m = ITEM.exec(l);
    if (!m) return undefined;
    const body: string[] = [l];
    for (i++; i < lines.length && lines[i] !== '\t}'; i++) body.push(lines[i]!);
    if (i >= lines.length) return undefined;
    body.push('\t}');
    const key = `${m[1]} ${m[2]}`;
    items.set(key, item(m[1] as Item['kind'], m[2]!, body));
    order.push(key);
  }
  if (i >= lines.length) return undefined;
  // nothing may follow the block but blank lines
  if (lines.slice(i + 1).some((l) => l.trim() !== '')) return undefined;
  return { table, items, order };
}

/**
 * A concatenated interval set (the kernel's pipapo): deleting or adding an element costs time in proportion to the
 * whole set, so past enough changed elements the set is deleted and declared again in the transaction. Re-creating
 * has a fixed cost (the chains using the set are flushed and written again: nft fetches the table's rules) plus one
 * in proportion to the set. Measured on the bench table: 60 changed elements in two 2,000-element sets cost 180 ms
 * of kernel time as elements, 60 ms re-created; with ~100-element bucket sets, one change's difference applied
 * element-wise took 14 ms against 23 ms with the sets re-created (median, through `nft -i`, load 7). So: re-created
 * past 16 + 10,000 / size changed elements (20 for 2,000, 116 for 100).
 */
const PIPAPO = /^\t\ttype \S+ \. .*\n\t\tflags interval$/m;
const recreates = (changed: number, size: number): boolean => changed > 16 + 10_000 / Math.max(size, 1);

/** A map element's key (`10.0.0.1 : jump c` -> `10.0.0.1`): what `delete element` names. */
const keyOf = (kind: Item['kind'], e: string) => (kind === 'map' ? e.split(' : ')[0]! : e);

/**
 * What a set lost and gained. Pods selected by the same policies hold the same element arrays (the renderer's
 * cache): the difference of a pair of arrays is computed once (weakly held by the old array).
 */
const diffs = new WeakMap<readonly string[], WeakMap<readonly string[], { gone: string[]; added: string[] }>>();
function elementDiff(o: readonly string[], n: readonly string[]): { gone: string[]; added: string[] } {
  let byNew = diffs.get(o);
  const hit = byNew?.get(n);
  if (hit) return hit;
  const had = new Set(o);
  const has = new Set(n);
  const d = { gone: o.filter((e) => !has.has(e)), added: n.filter((e) => !had.has(e)) };
  if (!byNew) diffs.set(o, (byNew = new WeakMap()));
  byNew.set(n, d);
  return d;
}

/** The transaction turning table script `prev` into `next`, '' when they are the same, undefined: apply in full. */
export function deltaScript(prev: string, next: string): string | undefined {
  const a = parseTable(prev);
  const b = parseTable(next);
  if (!a || !b) return undefined;
  return deltaTables(a, b);
}

/** deltaScript on parsed tables (the renderer's own structure: no script written or parsed). */
export function deltaTables(a: Parsed, b: Parsed): string | undefined {
  if (a.table !== b.table) return undefined;
  if (a.items.get('comment')?.text !== b.items.get('comment')?.text) return undefined;
  const T = `inet ${b.table}`;
  const flush: string[] = [];
  const delElems: string[] = [];
  const block: string[] = [];
  const addElems: string[] = [];
  const del: string[] = [];
  const recreate: Item[] = [];
  const elems = (verb: 'add' | 'delete', o: Item, es: readonly string[]) => {
    const CHUNK = 2000;
    for (let k = 0; k < es.length; k += CHUNK)
      (verb === 'add' ? addElems : delElems).push(
        `${verb} element ${T} ${o.name} { ${es.slice(k, k + CHUNK).join(', ')} }`,
      );
  };
  for (const key of b.order) {
    const n = b.items.get(key)!;
    const o = a.items.get(key);
    if (o && sameItem(o, n)) continue;
    if (!o) {
      block.push(n.text);
      continue;
    }
    // a counter's text carries no state of ours: the same name is the same counter
    if (n.kind === 'counter') continue;
    if (n.kind === 'chain') {
      if (
        o.head
          .split('\n')
          .filter((l) => /^\t\t(type|policy) /.test(l))
          .join() !==
        n.head
          .split('\n')
          .filter((l) => /^\t\t(type|policy) /.test(l))
          .join()
      )
        return undefined;
      flush.push(`flush chain ${T} ${n.name}`);
      block.push(n.text);
      continue;
    }
    if (o.head !== n.head) return undefined;
    const { gone, added } = elementDiff(o.elements, n.elements);
    if (n.kind === 'set' && PIPAPO.test(n.head) && recreates(gone.length + added.length, n.elements.length)) {
      recreate.push(n);
      continue;
    }
    // a map key whose verdict changed is deleted (old element) and added (new one)
    elems(
      'delete',
      o,
      gone.map((e) => keyOf(o.kind, e)),
    );
    elems('add', n, added);
  }
  // a set re-created: the rules using it are flushed first, it is deleted and declared again with its elements,
  // and the rules come back in the block (the same transaction)
  const drop: string[] = [];
  if (recreate.length > 0) {
    const flushed = new Set(flush);
    for (const key of b.order) {
      const c = b.items.get(key)!;
      if (c.kind !== 'chain' || !recreate.some((r) => c.text.includes(`@${r.name} `))) continue;
      const f = `flush chain ${T} ${c.name}`;
      if (flushed.has(f)) continue;
      flush.push(f);
      block.push(c.text);
    }
    for (const r of recreate) {
      drop.push(`delete set ${T} ${r.name}`);
      block.unshift(r.text);
    }
  }
  // deletions in dependency order: map elements (deleted above) and rules (flushed) point at chains, sets, counters
  const goneItems = a.order.filter((k) => !b.items.has(k)).map((k) => a.items.get(k)!);
  for (const kind of ['map', 'chain', 'set', 'counter'] as const)
    for (const o of goneItems) if (o.kind === kind) del.push(`delete ${kind} ${T} ${o.name}`);
  // a gone chain may still be the target of another gone chain's goto (a pod's `-in` chain passes to its `-in-np`):
  // the kernel refuses to delete a chain some rule jumps to (EBUSY), so every gone chain is flushed first
  for (const o of goneItems) if (o.kind === 'chain') flush.push(`flush chain ${T} ${o.name}`);
  const lines = [...flush, ...drop, ...delElems];
  if (block.length > 0) lines.push(`table ${T} {`, ...block, '}');
  lines.push(...addElems, ...del);
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}
