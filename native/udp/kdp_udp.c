// kdp_udp: batched UDP socket I/O for `kdp dns` (Node-API addon, built by scripts/build-native.ts).
//
// node:dgram reads one datagram per recvmsg and calls into JavaScript once per datagram, with a new Buffer and
// a new rinfo object each time, and sends each answer through a SendWrap. Here the socket is read with
// recvmmsg (up to `slots` datagrams per system call) into memory JavaScript already holds, JavaScript is called
// once per batch, and the answers it leaves in the batch's slots go out with one sendmmsg. The DNS logic stays
// in TypeScript (src/dns/udp.ts is the only user); this file only moves bytes.
//
// Layout shared with src/dns/udp.ts (keep the two in step): `rx` and `tx` hold `slots` slots of SLOT bytes;
// `meta` holds `slots` records of META bytes:
//   0  u32 length of the datagram received in the slot
//   4  u32 length of the answer JavaScript wrote into the same tx slot (0: none); reset before each batch
//   8  u32 the sender's port
//   12 u8  address family of the sender (4 or 6), 13 u8 length of the address text at 48
//   16 sockaddr of the sender (28 bytes, what sendTo takes back for an answer given later)
//   48 the sender's address as text (inet_ntop), at most 46 bytes
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define SLOT 65536
#define META 96
#define MAX_SLOTS 256
// batches read per readiness event before the loop gets the thread back
#define ROUNDS 8

typedef struct {
  napi_env env;
  int fd;
  int family;
  int slots;
  int closing;
  int released;  // the poll handle is closed, the descriptor and references are gone
  int finalized; // the JavaScript handle was garbage collected
  uv_poll_t poll;
  uint8_t *rx, *meta, *tx;
  napi_ref rx_ref, meta_ref, tx_ref, cb_ref, err_ref;
  napi_async_context actx;
  struct mmsghdr rmsg[MAX_SLOTS], smsg[MAX_SLOTS];
  struct iovec riov[MAX_SLOTS], siov[MAX_SLOTS];
  struct sockaddr_in6 raddr[MAX_SLOTS];
} kdp_udp;

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[160];
  const char *name = strerrorname_np(err);
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name ? name : "EIO", msg);
  return NULL;
}

#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) {                                                                                           \
      napi_throw_error(env, "EINVAL", "kdp_udp: " #call);                                                             \
      return NULL;                                                                                                     \
    }                                                                                                                  \
  } while (0)

static void report(kdp_udp *u, int err, const char *what) {
  napi_env env = u->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, code, msg, argv[1];
  char text[160];
  const char *name = strerrorname_np(err);
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  if (napi_get_reference_value(env, u->err_ref, &fn) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code) == napi_ok &&
      napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_error(env, code, msg, &argv[0]) == napi_ok) {
    napi_value result;
    if (napi_make_callback(env, u->actx, recv, fn, 1, argv, &result) == napi_pending_exception) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void fill_meta(kdp_udp *u, int i, unsigned len) {
  uint8_t *m = u->meta + (size_t)i * META;
  struct sockaddr *sa = (struct sockaddr *)&u->raddr[i];
  uint32_t port = 0;
  uint8_t fam = 0;
  const char *text = NULL;
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    port = ntohs(s6->sin6_port);
    fam = 6;
    text = inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    port = ntohs(s4->sin_port);
    fam = 4;
    text = inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
  }
  uint32_t zero = 0;
  memcpy(m, &len, 4);
  memcpy(m + 4, &zero, 4);
  memcpy(m + 8, &port, 4);
  m[12] = fam;
  size_t tl = text ? strlen(text) : 0;
  m[13] = (uint8_t)tl;
  memcpy(m + 16, &u->raddr[i], sizeof(struct sockaddr_in6));
  memcpy(m + 48, buf, tl);
}

static socklen_t addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

// sends the answers JavaScript left in the batch's slots
static void flush(kdp_udp *u, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    uint32_t len;
    memcpy(&len, u->meta + (size_t)i * META + 4, 4);
    if (len == 0 || len > SLOT) continue;
    u->siov[k].iov_base = u->tx + (size_t)i * SLOT;
    u->siov[k].iov_len = len;
    memset(&u->smsg[k].msg_hdr, 0, sizeof(struct msghdr));
    u->smsg[k].msg_hdr.msg_name = &u->raddr[i];
    u->smsg[k].msg_hdr.msg_namelen = addr_len((struct sockaddr *)&u->raddr[i]);
    u->smsg[k].msg_hdr.msg_iov = &u->siov[k];
    u->smsg[k].msg_hdr.msg_iovlen = 1;
    k++;
  }
  int off = 0;
  while (off < k) {
    int sent = sendmmsg(u->fd, u->smsg + off, (unsigned)(k - off), MSG_DONTWAIT);
    if (sent > 0) {
      off += sent;
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    // a full send buffer or an address no answer can go to: that answer is dropped (UDP), the rest go on
    off += 1;
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  kdp_udp *u = h->data;
  if (u->closing) return;
  if (status < 0) {
    report(u, -status, "udp poll");
    return;
  }
  for (int round = 0; round < ROUNDS && !u->closing; round++) {
    for (int i = 0; i < u->slots; i++) {
      u->riov[i].iov_base = u->rx + (size_t)i * SLOT;
      u->riov[i].iov_len = SLOT;
      memset(&u->rmsg[i].msg_hdr, 0, sizeof(struct msghdr));
      u->rmsg[i].msg_hdr.msg_name = &u->raddr[i];
      u->rmsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
      u->rmsg[i].msg_hdr.msg_iov = &u->riov[i];
      u->rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(u->fd, u->rmsg, (unsigned)u->slots, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) report(u, errno, "udp recvmmsg");
      return;
    }
    if (n == 0) return;
    for (int i = 0; i < n; i++) fill_meta(u, i, u->rmsg[i].msg_len);

    napi_env env = u->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value fn, recv, argv[1], result;
    if (napi_get_reference_value(env, u->cb_ref, &fn) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
        napi_create_int32(env, n, &argv[0]) == napi_ok) {
      if (napi_make_callback(env, u->actx, recv, fn, 1, argv, &result) == napi_pending_exception) {
        napi_value ex;
        napi_get_and_clear_last_exception(env, &ex);
        napi_fatal_exception(env, ex);
      }
    }
    napi_close_handle_scope(env, scope);
    if (u->closing) return;
    flush(u, n);
    if (n < u->slots) return;
  }
}

static void drop_refs(kdp_udp *u) {
  napi_ref *refs[] = {&u->rx_ref, &u->meta_ref, &u->tx_ref, &u->cb_ref, &u->err_ref};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
    if (*refs[i]) napi_delete_reference(u->env, *refs[i]);
    *refs[i] = NULL;
  }
}

// the state lives until both the poll handle is closed and the JavaScript handle is collected, so a handle
// used after close() finds `closing` set instead of freed memory
static void on_closed(uv_handle_t *h) {
  kdp_udp *u = h->data;
  close(u->fd);
  u->fd = -1;
  drop_refs(u);
  napi_async_destroy(u->env, u->actx);
  u->released = 1;
  if (u->finalized) free(u);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  kdp_udp *u = data;
  u->finalized = 1;
  if (u->released) free(u);
}

static kdp_udp *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "EINVAL", "kdp_udp: not a socket handle");
    return NULL;
  }
  kdp_udp *u = p;
  if (u->closing) {
    napi_throw_error(env, "ERR_SOCKET_DGRAM_NOT_RUNNING", "kdp_udp: socket is closed");
    return NULL;
  }
  return u;
}

static uint8_t *buffer_of(napi_env env, napi_value v, size_t need, napi_ref *ref) {
  void *data;
  size_t len;
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, &data, &len) != napi_ok ||
      len < need) {
    napi_throw_range_error(env, "EINVAL", "kdp_udp: buffer too small");
    return NULL;
  }
  if (napi_create_reference(env, v, 1, ref) != napi_ok) return NULL;
  return data;
}

// reads exactly `n` arguments into argv; false (with a TypeError thrown) when fewer were passed
static bool args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *what) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    napi_throw_type_error(env, "EINVAL", what);
    return false;
  }
  return true;
}

// open(host, port, reusePort, slots, rx, meta, tx, onBatch, onError) -> [handle, boundPort]
static napi_value udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!args(env, info, 9, argv, "kdp_udp.open: 9 arguments")) return NULL;
  char host[64];
  size_t hl;
  int32_t port, slots;
  bool reuse;
  CHECK(napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hl));
  CHECK(napi_get_value_int32(env, argv[1], &port));
  CHECK(napi_get_value_bool(env, argv[2], &reuse));
  CHECK(napi_get_value_int32(env, argv[3], &slots));
  if (slots < 1 || slots > MAX_SLOTS || port < 0 || port > 65535) {
    napi_throw_range_error(env, "EINVAL", "kdp_udp.open: slots or port out of range");
    return NULL;
  }

  struct sockaddr_in6 a6 = {0};
  struct sockaddr_in a4 = {0};
  int family;
  if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
    family = AF_INET6;
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)port);
  } else if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
    family = AF_INET;
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)port);
  } else {
    napi_throw_type_error(env, "EINVAL", "kdp_udp.open: host is not an IP address");
    return NULL;
  }

  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "udp socket");
  int on = 1, off = 0;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "udp IPV6_V6ONLY");
  }
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "udp SO_REUSEPORT");
  }
  int rc = family == AF_INET6 ? bind(fd, (struct sockaddr *)&a6, sizeof a6) : bind(fd, (struct sockaddr *)&a4, sizeof a4);
  if (rc < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "udp bind");
  }
  struct sockaddr_in6 bound = {0};
  socklen_t bl = sizeof bound;
  if (getsockname(fd, (struct sockaddr *)&bound, &bl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "udp getsockname");
  }
  int bound_port = family == AF_INET6 ? ntohs(bound.sin6_port) : ntohs(((struct sockaddr_in *)&bound)->sin_port);

  kdp_udp *u = calloc(1, sizeof *u);
  if (!u) {
    close(fd);
    napi_throw_error(env, "ENOMEM", "kdp_udp: out of memory");
    return NULL;
  }
  u->env = env;
  u->fd = fd;
  u->family = family;
  u->slots = slots;
  size_t data = (size_t)slots * SLOT;
  if (!(u->rx = buffer_of(env, argv[4], data, &u->rx_ref)) ||
      !(u->meta = buffer_of(env, argv[5], (size_t)slots * META, &u->meta_ref)) ||
      !(u->tx = buffer_of(env, argv[6], data, &u->tx_ref)) || napi_create_reference(env, argv[7], 1, &u->cb_ref) != napi_ok ||
      napi_create_reference(env, argv[8], 1, &u->err_ref) != napi_ok) {
    close(fd);
    drop_refs(u);
    free(u);
    return NULL;
  }
  napi_value resource, name;
  CHECK(napi_create_object(env, &resource));
  CHECK(napi_create_string_utf8(env, "KDP_UDP", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, resource, name, &u->actx));

  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  if (uv_poll_init(loop, &u->poll, fd) != 0) {
    close(fd);
    drop_refs(u);
    napi_async_destroy(env, u->actx);
    free(u);
    napi_throw_error(env, "EIO", "kdp_udp: uv_poll_init");
    return NULL;
  }
  u->poll.data = u;
  uv_poll_start(&u->poll, UV_READABLE, on_readable);

  napi_value ext, out, p;
  CHECK(napi_create_external(env, u, on_finalize, NULL, &ext));
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, bound_port, &p));
  CHECK(napi_set_element(env, out, 0, ext));
  CHECK(napi_set_element(env, out, 1, p));
  return out;
}

// sendTo(handle, data, sockaddr): one answer given after its batch (the slow path); dropped, as dgram's would
// be, when the socket cannot take it
static napi_value udp_send_to(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!args(env, info, 3, argv, "kdp_udp.sendTo: 3 arguments")) return NULL;
  kdp_udp *u = get_handle(env, argv[0]);
  if (!u) return NULL;
  void *data, *sa;
  size_t len, salen;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  CHECK(napi_get_buffer_info(env, argv[2], &sa, &salen));
  if (salen < sizeof(struct sockaddr_in6)) {
    napi_throw_range_error(env, "EINVAL", "kdp_udp.sendTo: bad address");
    return NULL;
  }
  struct sockaddr_in6 dst;
  memcpy(&dst, sa, sizeof dst);
  ssize_t rc;
  do rc = sendto(u->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&dst, addr_len((struct sockaddr *)&dst));
  while (rc < 0 && errno == EINTR);
  // an answer the socket cannot take is dropped, as a full UDP send buffer drops it
  return NULL;
}

// close(handle): stops reading at once; the descriptor is closed when libuv has released the poll handle
static napi_value udp_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, 1, argv, "kdp_udp.close: 1 argument")) return NULL;
  kdp_udp *u = get_handle(env, argv[0]);
  if (!u) return NULL;
  u->closing = 1;
  uv_poll_stop(&u->poll);
  uv_close((uv_handle_t *)&u->poll, on_closed);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"open", udp_open}, {"sendTo", udp_send_to}, {"close", udp_close}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  napi_value v;
  if (napi_create_int32(env, SLOT, &v) == napi_ok) napi_set_named_property(env, exports, "SLOT", v);
  if (napi_create_int32(env, META, &v) == napi_ok) napi_set_named_property(env, exports, "META", v);
  return exports;
}
