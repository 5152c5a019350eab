// kdp_tcp: batched reads and direct writes for connected TCP sockets (Node-API addon).
//
// A socket node created (accepted or connected) keeps its libuv handle for its life (close, errors, the
// fallback write queue), but its reads are taken over: the handle's reading is stopped and the descriptor is
// watched in this addon's epoll set, itself polled by the libuv loop. When sockets are readable, every ready one
// is read once into one arena JavaScript holds, and JavaScript is called once for the whole batch with a record
// per read. Writes go straight to write(2); what the kernel does not take is returned to JavaScript, which queues
// it on node's socket.
//
// TLS (the HTTPS port's HTTP/1.1 connections): a watched socket can be put in peek mode, where its first bytes
// (the ClientHello) are reported with MSG_PEEK and stay in the kernel, so that JavaScript can still give the
// connection to node:tls untouched; or given an SSL (OpenSSL, node's own: its symbols are the node binary's),
// after which what it reads is ciphertext fed to the SSL and what is reported is the plaintext. The SSL writes into
// a memory BIO; its ciphertext goes to write(2) when JavaScript says node queues nothing for the socket, and what
// is left is returned to JavaScript as a Buffer to queue on node's socket, so order and backpressure stay node's.
//
// Meta records (Int32 quads per read): id, offset of the bytes in the arena, result (bytes > 0, 0 end of
// stream, -errno; -EAGAIN for TLS: no plaintext, only ciphertext to flush), flags (1: the SSL has ciphertext
// to flush: tlsFlush).
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_EVENTS 64
#define READ_MAX 65536
// room kept free in the arena for what OpenSSL may hold of a partial record, beyond what is read this round
#define TLS_ROOM (20 * 1024)
#define MODE_PLAIN 0
#define MODE_PEEK 1
#define MODE_TLS 2

typedef struct {
  int32_t id; // the socket this slot is for (0: none)
  int32_t mode;
  SSL *ssl;
} tls_slot;

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
  // slots[fd]: the peek mode or SSL of the socket `id` under that number; unlike owner it outlives unwatch (a
  // paused socket keeps its SSL) and ends with forget, or when a later socket takes the number
  tls_slot *slots;
  size_t slots_len;
  uint8_t *cipher; // ciphertext read from a TLS socket, before it goes into the SSL
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
#define RECORD(id_, off_, r_, flags_)                                                                                  \
  do {                                                                                                                 \
    t->meta[count * 4] = (id_);                                                                                        \
    t->meta[count * 4 + 1] = (int32_t)(off_);                                                                          \
    t->meta[count * 4 + 2] = (int32_t)(r_);                                                                            \
    t->meta[count * 4 + 3] = (flags_);                                                                                 \
    count++;                                                                                                           \
  } while (0)
  for (int i = 0; i < n; i++) {
    if (t->arena_len - off < TLS_ROOM + 4096 || (size_t)count + 2 > t->meta_len)
      break; // level-triggered: the rest come on the next round
    int fd = (int)(evs[i].data.u64 & 0xffffffffu);
    int32_t id = (int32_t)(evs[i].data.u64 >> 32);
    if ((size_t)fd >= t->owner_len || t->owner[fd] != id) continue;
    tls_slot *sl = (size_t)fd < t->slots_len && t->slots[fd].id == id ? &t->slots[fd] : NULL;
    size_t want = t->arena_len - off;
    if (want > READ_MAX) want = READ_MAX;
    if (sl == NULL || sl->mode == MODE_PLAIN) {
      ssize_t r = read(fd, t->arena + off, want);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      RECORD(id, off, r < 0 ? -errno : r, 0);
      if (r > 0) off += (size_t)r;
    } else if (sl->mode == MODE_PEEK) {
      // JavaScript attaches an SSL or gives the socket back before the next round (else it would be ready again)
      ssize_t r = recv(fd, t->arena + off, want, MSG_PEEK);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      RECORD(id, off, r < 0 ? -errno : r, 0);
      if (r > 0) off += (size_t)r;
    } else {
      SSL *ssl = sl->ssl;
      size_t held = BIO_ctrl_pending(SSL_get_rbio(ssl));
      size_t room = t->arena_len - off - TLS_ROOM;
      if (held >= room) continue;
      want = room - held;
      if (want > READ_MAX) want = READ_MAX;
      ssize_t r = read(fd, t->cipher, want);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (r <= 0) {
        RECORD(id, off, r < 0 ? -errno : 0, 0);
        continue;
      }
      BIO_write(SSL_get_rbio(ssl), t->cipher, (int)r);
      // plaintext out until the SSL wants more: all of it fits (it is shorter than the ciphertext it came in)
      size_t got = 0;
      int end = 1; // 1: wants more; 0: the peer's close_notify; -errno
      for (;;) {
        size_t n1 = 0;
        if (SSL_read_ex(ssl, t->arena + off + got, t->arena_len - off - got, &n1) == 1) {
          got += n1;
          if (t->arena_len - off - got == 0) break;
          continue;
        }
        int e = SSL_get_error(ssl, 0);
        if (e == SSL_ERROR_WANT_READ) break;
        end = e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
        ERR_clear_error();
        break;
      }
      int flags = BIO_ctrl_pending(SSL_get_wbio(ssl)) > 0 ? 1 : 0;
      if (got > 0) {
        RECORD(id, off, got, end == 1 ? flags : 0);
        off += got;
      }
      if (end != 1)
        RECORD(id, off, end, flags);
      else if (got == 0 && flags)
        RECORD(id, off, -EAGAIN, flags);
    }
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

// create(arena: Buffer, meta: Int32Array (quads), onBatch: (count) => void) -> external
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
  t->meta_len = len / 4;
  t->cipher = malloc(READ_MAX);
  if (!t->cipher) return err_value(env, ENOMEM);
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
  if (!socket_args(env, info, &t, &fd, &id)) return NULL;
  disown(t, fd, id);
  if (fd >= 0 && (size_t)fd < t->slots_len && t->slots[fd].id == id) {
    if (t->slots[fd].ssl) SSL_free(t->slots[fd].ssl);
    t->slots[fd] = (tls_slot){0, MODE_PLAIN, NULL};
  }
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

// ------------------------------------------------------------------------------------------------------ TLS

// the slot for (fd, id), made when `make`; a slot left by a socket whose number was reused is cleared first
static tls_slot *slot_for(kdp_tcp *t, int32_t fd, int32_t id, bool make) {
  if (fd < 0 || id == 0) return NULL;
  if ((size_t)fd >= t->slots_len) {
    if (!make) return NULL;
    size_t len = t->slots_len ? t->slots_len : 1024;
    while (len <= (size_t)fd) len *= 2;
    tls_slot *grown = realloc(t->slots, len * sizeof *grown);
    if (!grown) return NULL;
    memset(grown + t->slots_len, 0, (len - t->slots_len) * sizeof *grown);
    t->slots = grown;
    t->slots_len = len;
  }
  tls_slot *sl = &t->slots[fd];
  if (sl->id == id) return sl;
  if (!make) return NULL;
  if (sl->ssl) SSL_free(sl->ssl); // that socket's descriptor was closed: its number is this one's now
  *sl = (tls_slot){id, MODE_PLAIN, NULL};
  return sl;
}

// the arguments (t, fd, id, ...rest); false (an exception thrown) when they do not parse
static bool tls_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, kdp_tcp **t, int32_t *fd,
                     int32_t *id) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want ||
      napi_get_value_int32(env, argv[1], fd) != napi_ok || napi_get_value_int32(env, argv[2], id) != napi_ok ||
      (*t = get(env, argv[0])) == NULL) {
    napi_throw_error(env, "EINVAL", "expected (t, fd, id, ...)");
    return false;
  }
  return true;
}

// peek(t, fd, id, on: boolean) -> 0 | -errno: the socket's reads report its bytes without taking them (or not)
static napi_value peek(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  kdp_tcp *t;
  int32_t fd, id;
  if (!tls_args(env, info, 4, argv, &t, &fd, &id)) return NULL;
  bool on = false;
  napi_get_value_bool(env, argv[3], &on);
  tls_slot *sl = slot_for(t, fd, id, on);
  if (sl == NULL) return err_value(env, on ? ENOMEM : 0);
  if (sl->ssl) return err_value(env, EINVAL);
  sl->mode = on ? MODE_PEEK : MODE_PLAIN;
  return err_value(env, 0);
}

static void throw_ssl(napi_env env, const char *what) {
  char msg[512];
  unsigned long e = ERR_peek_last_error();
  char reason[256] = "unknown error";
  if (e) ERR_error_string_n(e, reason, sizeof reason);
  ERR_clear_error();
  snprintf(msg, sizeof msg, "%s: %s", what, reason);
  napi_throw_error(env, "ERR_TLS_CONTEXT", msg);
}

static void free_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  SSL_CTX_free(data);
}

// ALPN: http/1.1 when the client offers it (the connections that offer h2 are node:tls's), else none
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  for (unsigned int i = 0; i < inlen;) {
    unsigned int l = in[i];
    if (i + 1 + l > inlen) break;
    if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + l;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

static char *string_arg(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

// tlsContext(certPem, keyPem, cipherList, cipherSuites) -> external SSL_CTX (freed with it) | throws
static napi_value tls_context(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_error(env, "EINVAL", "expected (certPem, keyPem, cipherList, cipherSuites)");
    return NULL;
  }
  char *strs[4] = {NULL, NULL, NULL, NULL};
  napi_value result = NULL;
  SSL_CTX *ctx = NULL;
  BIO *cb = NULL, *kb = NULL;
  X509 *leaf = NULL;
  EVP_PKEY *key = NULL;
  for (int i = 0; i < 4; i++)
    if (!(strs[i] = string_arg(env, argv[i]))) {
      napi_throw_error(env, "EINVAL", "expected strings");
      goto out;
    }
  ERR_clear_error();
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    throw_ssl(env, "SSL_CTX_new");
    goto out;
  }
  // as node:tls's defaults: TLS 1.2 and 1.3, no renegotiation, node's cipher lists
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // resumption by tickets only, as node:tls's servers (no session cache kept in memory per context)
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
  if (SSL_CTX_set_cipher_list(ctx, strs[2]) != 1 || SSL_CTX_set_ciphersuites(ctx, strs[3]) != 1) {
    throw_ssl(env, "cipher list");
    goto out;
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  cb = BIO_new_mem_buf(strs[0], -1);
  kb = BIO_new_mem_buf(strs[1], -1);
  if (!cb || !kb || !(leaf = PEM_read_bio_X509_AUX(cb, NULL, NULL, NULL)) || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    throw_ssl(env, "certificate");
    goto out;
  }
  X509 *ca;
  while ((ca = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      throw_ssl(env, "certificate chain");
      goto out;
    }
  ERR_clear_error(); // the end of the PEM
  if (!(key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL)) || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    throw_ssl(env, "private key");
    goto out;
  }
  if (napi_create_external(env, ctx, free_ctx, NULL, &result) != napi_ok) result = NULL;
  else
    ctx = NULL; // the external owns it
out:
  if (ctx) SSL_CTX_free(ctx);
  if (leaf) X509_free(leaf);
  if (key) EVP_PKEY_free(key);
  if (cb) BIO_free(cb);
  if (kb) BIO_free(kb);
  for (int i = 0; i < 4; i++) free(strs[i]);
  return result;
}

// tlsAttach(t, fd, id, ctx) -> 0 | -errno: the socket is TLS from now on (server side, handshake to come)
static napi_value tls_attach(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  kdp_tcp *t;
  int32_t fd, id;
  if (!tls_args(env, info, 4, argv, &t, &fd, &id)) return NULL;
  void *ctx = NULL;
  if (napi_get_value_external(env, argv[3], &ctx) != napi_ok || !ctx) return err_value(env, EINVAL);
  tls_slot *sl = slot_for(t, fd, id, true);
  if (sl == NULL) return err_value(env, ENOMEM);
  if (sl->ssl) return err_value(env, EINVAL);
  SSL *ssl = SSL_new(ctx);
  BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
  if (!ssl || !r || !w) {
    if (ssl) SSL_free(ssl);
    if (r) BIO_free(r);
    if (w) BIO_free(w);
    ERR_clear_error();
    return err_value(env, ENOMEM);
  }
  BIO_set_mem_eof_return(r, -1); // empty: wait for more, not the end
  SSL_set_bio(ssl, r, w);
  SSL_set_accept_state(ssl);
  sl->ssl = ssl;
  sl->mode = MODE_TLS;
  return err_value(env, 0);
}

// the SSL's ciphertext: to write(2) when `direct`, what is left as a Buffer to queue (0 when nothing is)
static napi_value drain(napi_env env, int fd, SSL *ssl, bool direct) {
  BIO *w = SSL_get_wbio(ssl);
  char *p = NULL;
  long len = BIO_get_mem_data(w, &p);
  if (len <= 0) return err_value(env, 0);
  ssize_t r = 0;
  if (direct) {
    r = write(fd, p, (size_t)len);
    if (r < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        int e = errno;
        (void)BIO_reset(w);
        return err_value(env, e);
      }
      r = 0;
    }
  }
  napi_value v;
  if (r == len) v = err_value(env, 0);
  else {
    void *data;
    if (napi_create_buffer_copy(env, (size_t)(len - r), p + r, &data, &v) != napi_ok) v = err_value(env, ENOMEM);
  }
  (void)BIO_reset(w);
  return v;
}

static SSL *ssl_of(kdp_tcp *t, int32_t fd, int32_t id) {
  tls_slot *sl = slot_for(t, fd, id, false);
  return sl && sl->mode == MODE_TLS ? sl->ssl : NULL;
}

// the arguments (t, fd, id, [data,] direct) of tlsWrite, tlsFlush and tlsEnd: the socket's SSL, or NULL (with an
// exception thrown when they do not parse, else *err set: the socket has no SSL here)
static SSL *ssl_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int32_t *fd, bool *direct,
                     napi_value *err) {
  kdp_tcp *t;
  int32_t id;
  *err = NULL;
  if (!tls_args(env, info, want, argv, &t, fd, &id)) return NULL;
  SSL *ssl = ssl_of(t, *fd, id);
  if (!ssl) *err = err_value(env, EBADF);
  *direct = false;
  napi_get_value_bool(env, argv[want - 1], direct);
  return ssl;
}

// tlsWrite(t, fd, id, data: string (latin1) | Buffer, direct) -> 0 | Buffer to queue | -errno
static napi_value tls_write(napi_env env, napi_callback_info info) {
  napi_value argv[5], err;
  int32_t fd;
  bool direct;
  SSL *ssl = ssl_args(env, info, 5, argv, &fd, &direct, &err);
  if (!ssl) return err;
  bool isbuf = false;
  napi_is_buffer(env, argv[3], &isbuf);
  char stack[16384];
  char *buf = stack;
  size_t len = 0;
  if (isbuf) {
    void *data;
    CHECK(napi_get_buffer_info(env, argv[3], &data, &len));
    buf = data;
  } else {
    CHECK(napi_get_value_string_latin1(env, argv[3], NULL, 0, &len));
    if (len >= sizeof stack) buf = malloc(len + 1);
    if (!buf) return err_value(env, ENOMEM);
    size_t got;
    CHECK(napi_get_value_string_latin1(env, argv[3], buf, len + 1, &got));
    len = got;
  }
  size_t done = 0;
  int ok = len == 0 ? 1 : SSL_write_ex(ssl, buf, len, &done);
  if (!isbuf && buf != stack) free(buf);
  if (ok != 1) {
    ERR_clear_error();
    return err_value(env, EPROTO);
  }
  return drain(env, fd, ssl, direct);
}

// tlsFlush(t, fd, id, direct) -> 0 | Buffer to queue | -errno: ciphertext the SSL made while reading
static napi_value tls_flush(napi_env env, napi_callback_info info) {
  napi_value argv[4], err;
  int32_t fd;
  bool direct;
  SSL *ssl = ssl_args(env, info, 4, argv, &fd, &direct, &err);
  return ssl ? drain(env, fd, ssl, direct) : err;
}

// tlsEnd(t, fd, id, direct) -> 0 | Buffer to queue | -errno: close_notify (after the handshake)
static napi_value tls_end(napi_env env, napi_callback_info info) {
  napi_value argv[4], err;
  int32_t fd;
  bool direct;
  SSL *ssl = ssl_args(env, info, 4, argv, &fd, &direct, &err);
  if (!ssl) return err;
  if (SSL_is_init_finished(ssl)) SSL_shutdown(ssl);
  ERR_clear_error();
  return drain(env, fd, ssl, direct);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"create", create}, {"watch", watch}, {"unwatch", unwatch}, {"forget", forget}, {"writeLatin1", write_latin1}, {"peek", peek}, {"tlsContext", tls_context}, {"tlsAttach", tls_attach},
      {"tlsWrite", tls_write},       {"tlsFlush", tls_flush}, {"tlsEnd", tls_end}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
