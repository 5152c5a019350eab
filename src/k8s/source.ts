// The cluster-state port: what every source (Kubernetes API, manifests directory, the test fake) offers the
// proxy, DNS, ingress and node agent. A consumer never touches the client library or a raw API object; it
// runs on the controller kernel (controller.ts), which registers a StoreListener through watch() and hands
// reconcile the source's store as a read-only view. The listener contract (store.ts, every source):
//   - changed(kind, key, previous, current) for each object of a declared kind, after conversion to the
//     model: previous undefined = added, current undefined = deleted; previous is exactly the object the
//     store held for that key (the one last delivered), and the view already holds current; no duplicate
//     add, no update or delete of a key not delivered, no update that changes nothing the model carries;
//   - synced(kind) once per declared kind, after the initial list of that kind has been delivered in full;
//   - calls are synchronous and serialized; none is made after stop();
//   - a listener registered after start() gets the changes from then on and starts from the view (its first
//     call for a key already held may be an update or a delete; no synced for a kind already synced).
import type { IndexFn, StoreListener, StoreView } from './store.ts';
import type { Kind } from '../model/types.ts';

/** What every cluster-state source offers. */
export interface ClusterSource {
  /**
   * Registers an object-level listener (the controller kernel's intake); returns the unsubscribe function.
   * Register before start(): the Kubernetes source lists and watches only the kinds some listener declared
   * then (the manifests source and the fake load every kind).
   */
  watch(listener: StoreListener): () => void;
  /** The source's store, read-only: the one copy of every watched object in this process. */
  readonly view: StoreView & IndexRegistry;
  /** Starts listing and watching; resolves once every watched kind has synced. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Consumers declare the secondary indexes they read (the store shares one per name). */
export interface IndexRegistry {
  addIndex<K extends Kind>(kind: K, name: string, fn: IndexFn<K>): void;
}
