// kdp_tcp: batched reads and direct writes for connected TCP sockets (Node-API addon).
//
// A socket node created (accepted or connected) keeps its libuv handle for its life (close, errors, the
// fallback write queue), but its reads are taken over: the handle's reading is stopped and the descriptor is
// watched in this addon's epoll set, itself polled by the libuv loop. When sockets are readable, every ready one
// is read once into one arena JavaScript holds, and JavaScript is called once for the whole batch with a record
// per read. Writes go straight to write(2); what the kernel does not take is returned to JavaScript, which queues
// it on node's socket.
//
// Meta records (Int32 triples per read): id, offset of the bytes in the arena, result (bytes > 0, 0 end of
// stream, -errno).
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <uv.h>

#define MAX_EVENTS 64
#define READ_MAX 65536

typedef struct {
  napi_env env;
  int ep;
  uv_poll_t poll;
  uint8_t *arena;
  size_t arena_len;
  int32_t *meta;
  size_t meta_len; // in records
  napi_ref arena_ref, meta_ref, cb_ref;
  napi_async_context actx;
  // owner[fd]: the id watched under that descriptor number now (0: none). An event whose id is not the owner's
  // comes from a registration of a descriptor already closed here whose file is still open elsewhere (a child
  // forked before the close holds a copy until it execs): its number may be another socket's now, so it is not read.
  int32_t *owner;
  size_t owner_len;
} kdp_tcp;

static napi_value err_value(napi_env env, int err) {
  napi_value v;
  napi_create_int32(env, -err, &v);
  return v;
}

#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) {                                                                                           \
      napi_throw_error(env, "EINVAL", #call);                                                                          \
      return NULL;                                                                                                     \
    }                                                                                                                  \
  } while (0)

static void on_ready(uv_poll_t *h, int status, int events) {
  (void)events;
  kdp_tcp *t = h->data;
  if (status < 0) return;
  struct epoll_event evs[MAX_EVENTS];
  size_t max = t->meta_len < MAX_EVENTS ? t->meta_len : MAX_EVENTS;
  int n = epoll_wait(t->ep, evs, (int)max, 0);
  if (n <= 0) return;
  size_t off = 0;
  int count = 0;
  for (int i = 0; i < n; i++) {
    if (t->arena_len - off < 4096) break; // level-triggered: the rest come on the next round
    int fd = (int)(evs[i].data.u64 & 0xffffffffu);
    int32_t id = (int32_t)(evs[i].data.u64 >> 32);
    if ((size_t)fd >= t->owner_len || t->owner[fd] != id) continue;
    size_t want = t->arena_len - off;
    if (want > READ_MAX) want = READ_MAX;
    ssize_t r = read(fd, t->arena + off, want);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    t->meta[count * 3] = id;
    t->meta[count * 3 + 1] = (int32_t)off;
    t->meta[count * 3 + 2] = r < 0 ? -errno : (int32_t)r;
    if (r > 0) off += (size_t)r;
    count++;
  }
  if (count == 0) return;
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, t->cb_ref, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, count, &arg);
  // a throw in JavaScript is an uncaught exception, as from any callback node makes out of its loop
  if (napi_make_callback(env, t->actx, recv, cb, 1, &arg, &result) == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, scope);
}

// create(arena: Buffer, meta: Int32Array, onBatch: (count) => void) -> external
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  kdp_tcp *t = calloc(1, sizeof *t);
  t->env = env;
  void *data;
  CHECK(napi_get_buffer_info(env, argv[0], &data, &t->arena_len));
  t->arena = data;
  napi_typedarray_type type;
  size_t len;
  napi_value ab;
  size_t byte_off;
  CHECK(napi_get_typedarray_info(env, argv[1], &type, &len, &data, &ab, &byte_off));
  t->meta = data;
  t->meta_len = len / 3;
  CHECK(napi_create_reference(env, argv[0], 1, &t->arena_ref));
  CHECK(napi_create_reference(env, argv[1], 1, &t->meta_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &t->cb_ref));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "kdp_tcp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &t->actx));
  t->ep = epoll_create1(EPOLL_CLOEXEC);
  if (t->ep < 0) return err_value(env, errno);
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  uv_poll_init(loop, &t->poll, t->ep);
  t->poll.data = t;
  uv_poll_start(&t->poll, UV_READABLE, on_ready);
  // the sockets keep the loop alive, not the set that watches them
  uv_unref((uv_handle_t *)&t->poll);
  napi_value ext;
  CHECK(napi_create_external(env, t, NULL, NULL, &ext));
  return ext;
}

static kdp_tcp *get(napi_env env, napi_value v) {
  void *p = NULL;
  napi_get_value_external(env, v, &p);
  return p;
}

// the (t, fd, id) arguments of watch, unwatch and forget; false (an exception thrown) when they do not parse
static bool socket_args(napi_env env, napi_callback_info info, kdp_tcp **t, int32_t *fd, int32_t *id) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[1], fd) != napi_ok || napi_get_value_int32(env, argv[2], id) != napi_ok ||
      (*t = get(env, argv[0])) == NULL) {
    napi_throw_error(env, "EINVAL", "expected (t, fd, id)");
    return false;
  }
  return true;
}

// the id now watched under `fd` is `id` no longer (a later socket with the same number keeps its own)
static void disown(kdp_tcp *t, int32_t fd, int32_t id) {
  if (fd >= 0 && (size_t)fd < t->owner_len && t->owner[fd] == id) t->owner[fd] = 0;
}

// watch(t, fd, id) -> 0 | -errno
static napi_value watch(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, id;
  if (!socket_args(env, info, &t, &fd, &id)) return NULL;
  if (fd < 0 || id == 0) return err_value(env, EINVAL);
  if ((size_t)fd >= t->owner_len) {
    size_t len = t->owner_len ? t->owner_len : 1024;
    while (len <= (size_t)fd) len *= 2;
    int32_t *grown = realloc(t->owner, len * sizeof *grown);
    if (!grown) return err_value(env, ENOMEM);
    memset(grown + t->owner_len, 0, (len - t->owner_len) * sizeof *grown);
    t->owner = grown;
    t->owner_len = len;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)(uint32_t)id << 32) | (uint32_t)fd};
  if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) return err_value(env, errno);
  t->owner[fd] = id;
  return err_value(env, 0);
}

// unwatch(t, fd, id) -> 0 | -errno (only while the descriptor is still the socket's: close removes it by itself)
static napi_value unwatch(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, id;
  if (!socket_args(env, info, &t, &fd, &id)) return NULL;
  disown(t, fd, id);
  if (epoll_ctl(t->ep, EPOLL_CTL_DEL, fd, NULL) < 0) return err_value(env, errno);
  return err_value(env, 0);
}

// forget(t, fd, id): the socket `id` watched under `fd` was closed (which took its registration out of the set,
// unless a forked child still holds the file)
static napi_value forget(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, id;
  if (socket_args(env, info, &t, &fd, &id)) disown(t, fd, id);
  return NULL;
}

// writeLatin1(fd, string) -> bytes written | -errno
static napi_value write_latin1(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  size_t len;
  CHECK(napi_get_value_string_latin1(env, argv[1], NULL, 0, &len));
  char stack[16384];
  char *buf = len < sizeof stack ? stack : malloc(len + 1);
  size_t got;
  CHECK(napi_get_value_string_latin1(env, argv[1], buf, len + 1, &got));
  ssize_t r = write(fd, buf, got);
  int err = errno;
  if (buf != stack) free(buf);
  napi_value v;
  napi_create_int32(env, r < 0 ? -err : (int32_t)r, &v);
  return v;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"create", create}, {"watch", watch}, {"unwatch", unwatch}, {"forget", forget}, {"writeLatin1", write_latin1}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
