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
// HTTP/2 (when built with nghttp2's header): a TLS connection whose ALPN chose h2 runs an nghttp2 server session
// here (node's nghttp2: its symbols are the node binary's too); see the HTTP/2 section below.
//
// Accept (the HTTPS port with TLS in the addon): a listening socket can be handed over too (listen). Its
// connections are accepted here and start in peek mode under an id the addon gives them; JavaScript gets a record
// for each (flags 4) and owns the connection without a node socket of its own until it needs one (node:tls, a
// hand-off, a write the kernel did not take): then node builds one over the descriptor, which it closes as for
// any socket; before that the addon closes it (closeFd).
//
// Meta records (Int32 quads per read): id, offset of the bytes in the arena, result (bytes > 0, 0 end of
// stream, -errno; -EAGAIN for TLS: no plaintext, only ciphertext to flush), flags (1: the SSL has ciphertext
// to flush: tlsFlush; 8: the same, made after a TLS 1.3 handshake (session tickets, a key update's answer), which
// may wait for the next write; 2: a record of the connection's HTTP/2 session, its bytes in the arena; 4: an
// accepted connection, its bytes the text "listener fd port address"; or, with the listener's id and -errno,
// accept failed and the listener is no longer watched).
//
// HTTP/1 heads (create's heads table, headNames): a read that starts with a request or response head gets an
// entry saying where its lines are (scan_head); such a read of at most 2 KiB, and every HTTP/2 header block,
// also reaches JavaScript as a latin1 string made here, after the count among the callback's arguments.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#if !defined(KDP_NO_H2) && __has_include(<nghttp2/nghttp2.h>)
// HTTP/2 over the addon's TLS: nghttp2's declarations; its symbols are the node binary's, as OpenSSL's (KDP_NO_H2:
// built as without the header; scripts/build-native.ts checks that this compiles too)
#include <nghttp2/nghttp2.h>
#define KDP_H2 1
#endif

#define MAX_EVENTS 64
// at most this many of a round's records are given to JavaScript as strings too
#define TEXTS_MAX 256
// the strings a round makes, at most (textsMax: tests lower it to take the fallbacks: latin1Slice, toString)
static int32_t texts_max = TEXTS_MAX;
#define READ_MAX 65536
// room kept free in the arena for what OpenSSL may hold of a partial record, beyond what is read this round
#define TLS_ROOM (20 * 1024)
// an HTTP/2 session's frames go into its SSL in writes of at most this much (TLS's largest record)
#define H2_SEND_ROOM 16384
#define MODE_PLAIN 0
#define MODE_PEEK 1
#define MODE_TLS 2

struct h2_conn;

typedef struct {
  int32_t id; // the socket this slot is for (0: none)
  int32_t mode;
  SSL *ssl;
  bool h2_ok;          // ALPN h2 may be chosen (tlsAttach)
  struct h2_conn *h2;  // HTTP/2 session once ALPN chose h2
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
  uint8_t *plain;  // plaintext of an HTTP/2 connection, before it goes into its session
  uint8_t *send_room; // an HTTP/2 session's frames gathered for one SSL_write (h2_send)
  // during a round: where the next record's bytes go in the arena, and how many records there are
  size_t off;
  int count;
  // HTTP/2 connections with input still to give their session (paused when the arena ran short)
  int32_t *pump;
  size_t pump_len, pump_cap;
  bool in_round; // records are being made (not while JavaScript runs)
  // HTTP/1 heads (scan_head): heads[i] for record i of the round is the index of its read's entry (0: none; an
  // HTTP/2 header block's record: -1 - k, its block is the round's string k); entries from heads[meta_len] on,
  // the next at hoff
  int32_t *heads;
  size_t heads_len, hoff;
  napi_ref heads_ref;
  // the records given to JavaScript as strings too (the callback's arguments after the count): scanned reads (heads
  // entry [4]: which one) and HTTP/2 header blocks
  int32_t texts[TEXTS_MAX];
  int32_t ntexts;
  int32_t next_id; // the ids of accepted connections (JavaScript's own stay under ACCEPT_IDS)
  // the pieces of a gathered write (gatherSpec): n int32 pairs
  int32_t *spec;
  size_t spec_len;
  napi_ref spec_ref;
} kdp_tcp;

#define ACCEPT_IDS 0x40000000
#define ACCEPTED 4
// a record of an HTTP/2 session (its bytes in the arena)
#define H2_RECORD 2
// the SSL has ciphertext it made after a TLS 1.3 handshake: no handshake message, so nothing the peer waits for
#define TLS_LATER 8
// at most this many connections accepted from one listener per round: the connections already open go first (as
// nginx's one accept per event). Measured with wrk, new connection per request: 1 gave nginx's latency at ~10%
// more CPU per request, 4 the least CPU at 1.5x nginx's p50, 2 between (bench/ingress, https-new)
#define ACCEPT_MAX 2

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

#define RECORD(t_, id_, off_, r_, flags_)                                                                             \
  do {                                                                                                                 \
    (t_)->meta[(t_)->count * 4] = (id_);                                                                               \
    (t_)->meta[(t_)->count * 4 + 1] = (int32_t)(off_);                                                                 \
    (t_)->meta[(t_)->count * 4 + 2] = (int32_t)(r_);                                                                   \
    (t_)->meta[(t_)->count * 4 + 3] = (flags_);                                                                        \
    if ((t_)->heads != NULL) (t_)->heads[(t_)->count] = 0;                                                             \
    (t_)->count++;                                                                                                     \
  } while (0)

// HTTP/1 heads (ingress/head-scan.ts: the entry's layout, and scanText, the producer for the heads not scanned
// here, which must agree with this one). A read that starts with a request head (GET or HEAD) or a response head
// (HTTP/1.x) complete within its first SCAN_MAX bytes, of at most SCAN_LINES header lines, each of value bytes up
// to its CRLF, gets an entry: the head's end, its shape bits, and per line where its name, colon and end are and
// which of the names JavaScript gave (headNames) it is. Anything else (a body, a bad byte, a head cut short) gets
// none and JavaScript searches the text itself.
#define SCAN_MAX 8192
#define SCAN_LINES 64
#define SCAN_ENTRY (5 + 4 * SCAN_LINES)
// a scanned read this long at most is given to JavaScript as a string too (the callback's arguments after the count)
#define SCAN_TEXT_MAX 2048
#define SCAN_GOOD_REQUEST 1
#define SCAN_GOOD_RESPONSE 2
#define SCAN_PLAIN 0x100
#define SCAN_NAMES 255
#define SCAN_NAME_MAX 48
// a byte's classes: 1 a value byte (tab, 0x20-0x7e, >= 0x80), 2 a token byte, 4 a request target byte (0x21-0x7e)
static uint8_t SCAN_BYTE[256];
// the names a line's code refers to: 1 to scan_count, lower case; by length, the indexes of the
// names that long
#define SCAN_SAME_LENGTH 16
static struct {
  uint8_t len;
  uint8_t s[SCAN_NAME_MAX];
} scan_names[SCAN_NAMES + 1];
static int scan_count;
static uint8_t scan_by_len[64][SCAN_SAME_LENGTH], scan_len_n[64];

static void scan_bytes(void) {
  if (SCAN_BYTE['a']) return;
  for (int c = 0; c < 256; c++) {
    uint8_t k = 0;
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) k |= 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL))
      k |= 2;
    if (c >= 0x21 && c <= 0x7e) k |= 4;
    SCAN_BYTE[c] = k;
  }
}

// The index of the name n (len bytes, value bytes) among the names, compared without case: the names are of
// a-z, 0-9 and '-' only (headNames), bytes with bit 0x20 set, and no value byte but A-Z becomes one of them
// when that bit is set (those that would, 0x0d and 0x12, are control bytes): so n's bytes | 0x20, 8 at a time.
#define BYTES_OF(b) (0x0101010101010101ULL * (b))
static int32_t scan_name_id(const uint8_t *n, size_t len) {
  if (len >= SCAN_NAME_MAX) return 0;
  for (int j = 0; j < scan_len_n[len]; j++) {
    const uint8_t *s = scan_names[scan_by_len[len][j]].s;
    if ((n[0] | 0x20) != s[0]) continue;
    size_t k = 0;
    for (; k + 8 <= len; k += 8) {
      uint64_t a, b;
      memcpy(&a, n + k, 8);
      memcpy(&b, s + k, 8);
      if ((a | BYTES_OF(0x20)) != b) break;
    }
    if (k + 8 <= len) continue;
    while (k < len && (n[k] | 0x20) == s[k]) k++;
    if (k == len) return scan_by_len[len][j];
  }
  return 0;
}

// from q, where the run of value bytes ends (a byte below 0x20 but tab, or 0x7f): 8 bytes at a time, the first
// such byte of a word found from the word's bits (little-endian: the lowest flagged byte is the first; the bits
// above it may be borrows, never below it); a tab flagged is passed over
static size_t value_run(const uint8_t *p, size_t q, size_t len) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (q + 8 <= len) {
    uint64_t w, x;
    memcpy(&w, p + q, 8);
    x = w ^ BYTES_OF(0x7f);
    // a byte below 0x20 (bytes from 0x80 up excluded by ~w), a byte that was 0x7f (a zero byte of x)
    uint64_t m = (((w - BYTES_OF(0x20)) & ~w) | ((x - BYTES_OF(1)) & ~x)) & BYTES_OF(0x80);
    if (m == 0) {
      q += 8;
      continue;
    }
    size_t k = q + ((size_t)__builtin_ctzll(m) >> 3);
    if (p[k] != '\t') return k;
    q = k + 1;
  }
#endif
  while (q < len && (SCAN_BYTE[p[q]] & 1)) q++;
  return q;
}

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_OWS(c) ((c) == ' ' || (c) == '\t')
// the entry of the head starting at p into out (SCAN_ENTRY ints of room): the ints written, 0 for none
static size_t scan_head(const uint8_t *p, size_t len, int32_t *out) {
  if (len > SCAN_MAX) len = SCAN_MAX;
  if (len < 16) return 0;
  int32_t flags;
  size_t from = 0; // a request's target
  if (memcmp(p, "HTTP/1.", 7) == 0)
    flags = SCAN_GOOD_RESPONSE;
  else if (memcmp(p, "GET /", 5) == 0)
    flags = SCAN_GOOD_REQUEST, from = 4;
  else if (memcmp(p, "HEAD /", 6) == 0)
    flags = SCAN_GOOD_REQUEST, from = 5;
  else
    return 0;
  size_t eol = value_run(p, 0, len);
  if (eol + 1 >= len || p[eol] != '\r' || p[eol + 1] != '\n') return 0;
  if (flags == SCAN_GOOD_RESPONSE) {
    // HTTP/1.[01] DDD, then the end of the line or a space and the reason
    if (eol < 12 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' || !IS_DIGIT(p[9]) || !IS_DIGIT(p[10]) ||
        !IS_DIGIT(p[11]) || (eol > 12 && p[12] != ' '))
      flags = 0;
  } else if (eol < from + 10 || memcmp(p + eol - 9, " HTTP/1.1", 9) != 0)
    flags = 0;
  else
    for (size_t k = from; k < eol - 9; k++)
      if (!(SCAN_BYTE[p[k]] & 4)) {
        flags = 0;
        break;
      }
  out[3] = (int32_t)eol;
  out[4] = -1; // (scan_record: the read's string)
  size_t n = 0, pos = eol + 2;
  for (;;) {
    if (pos + 1 >= len) return 0; // not all of the head is here
    if (p[pos] == '\r') {
      if (p[pos + 1] != '\n') return 0;
      break; // the empty line
    }
    if (n == SCAN_LINES) return 0;
    size_t q = value_run(p, pos, len);
    if (q + 1 >= len || p[q] != '\r' || p[q + 1] != '\n') return 0;
    size_t tok = pos; // (the CR at q ends the token at the latest)
    while (SCAN_BYTE[p[tok]] & 2) tok++;
    int32_t colon = -1, code = 0;
    if (tok < q && p[tok] == ':')
      colon = (int32_t)tok;
    else {
      const uint8_t *c = memchr(p + tok, ':', q - tok);
      if (c != NULL) colon = (int32_t)(c - p);
    }
    if (tok == pos || colon != (int32_t)tok) flags &= ~SCAN_GOOD_REQUEST; // a request's line: token ":" value
    if (colon >= 0) {
      size_t c = (size_t)colon;
      code = scan_name_id(p + pos, c - pos);
      if (p[c + 1] == ' ' && (c + 2 == q || (!IS_OWS(p[c + 2]) && !IS_OWS(p[q - 1])))) code |= SCAN_PLAIN;
    }
    int32_t *l = out + 5 + 4 * n;
    l[0] = (int32_t)pos;
    l[1] = colon;
    l[2] = (int32_t)q;
    l[3] = code;
    n++;
    pos = q + 2;
  }
  out[0] = (int32_t)(pos - 2);
  out[1] = flags;
  out[2] = (int32_t)n;
  return 5 + 4 * n;
}

// the entry of the round's last record, a read of len bytes at p
static void scan_record(kdp_tcp *t, const uint8_t *p, size_t len) {
  if (t->heads == NULL || scan_count == 0 || t->hoff + SCAN_ENTRY > t->heads_len) return;
  size_t w = scan_head(p, len, t->heads + t->hoff);
  if (w == 0) return;
  t->heads[t->count - 1] = (int32_t)t->hoff;
  // (a good response head is parsed from the read's bytes: no string for it)
  if (len <= SCAN_TEXT_MAX && t->ntexts < texts_max && (t->heads[t->hoff + 1] & SCAN_GOOD_RESPONSE) == 0) {
    t->heads[t->hoff + 4] = t->ntexts;
    t->texts[t->ntexts++] = t->count - 1;
  }
  t->hoff += w;
}

#ifdef KDP_H2
static void h2_free(struct h2_conn *c);
static bool h2_queued(struct h2_conn *c);
static int h2_round(kdp_tcp *t, tls_slot *sl, int fd);
static bool h2_start(kdp_tcp *t, tls_slot *sl);
static void pump_add(kdp_tcp *t, int32_t fd);
#endif

// one round of a TLS socket whose ciphertext is in its read BIO: the handshake, then plaintext records (HTTP/1.1)
// or its HTTP/2 session's records
static void tls_round(kdp_tcp *t, tls_slot *sl, int32_t id, int fd) {
#ifndef KDP_H2
  (void)fd;
#endif
  SSL *ssl = sl->ssl;
  int end = 1; // 1: wants more; 0: the peer's close_notify; -errno
  if (!SSL_is_init_finished(ssl)) {
    int r = SSL_do_handshake(ssl);
    if (r != 1) {
      int e = SSL_get_error(ssl, r);
      if (e != SSL_ERROR_WANT_READ) end = e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
      ERR_clear_error();
    }
  }
#ifdef KDP_H2
  if (end == 1 && sl->h2 == NULL && sl->h2_ok && SSL_is_init_finished(ssl)) {
    const unsigned char *p = NULL;
    unsigned int l = 0;
    SSL_get0_alpn_selected(ssl, &p, &l);
    if (l == 2 && memcmp(p, "h2", 2) == 0 && !h2_start(t, sl)) end = -ENOMEM;
  }
  if (end == 1 && sl->h2 != NULL) {
    end = h2_round(t, sl, fd);
    int flags = BIO_ctrl_pending(SSL_get_wbio(ssl)) > 0 ? 1 : 0;
    if (end != 1)
      RECORD(t, id, t->off, end, flags);
    else if (flags)
      RECORD(t, id, t->off, -EAGAIN, flags);
    return;
  }
#endif
  // plaintext out until the SSL wants more: all of it fits (it is shorter than the ciphertext it came in)
  size_t got = 0;
  if (end == 1 && SSL_is_init_finished(ssl))
    for (;;) {
      size_t n1 = 0;
      if (SSL_read_ex(ssl, t->arena + t->off + got, t->arena_len - t->off - got, &n1) == 1) {
        got += n1;
        if (t->arena_len - t->off - got == 0) break;
        continue;
      }
      int e = SSL_get_error(ssl, 0);
      if (e == SSL_ERROR_WANT_READ) break;
      end = e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
      ERR_clear_error();
      break;
    }
  int flags = 0;
  if (BIO_ctrl_pending(SSL_get_wbio(ssl)) > 0)
    flags = SSL_is_init_finished(ssl) && SSL_version(ssl) == TLS1_3_VERSION ? TLS_LATER : 1;
  if (got > 0) {
    RECORD(t, id, t->off, got, end == 1 ? flags : 0);
    scan_record(t, t->arena + t->off, got);
    t->off += got;
  }
  if (end != 1)
    RECORD(t, id, t->off, end, flags);
  else if (got == 0 && flags)
    RECORD(t, id, t->off, -EAGAIN, flags);
}

// JavaScript gets this round's records (one call for the batch)
static void deliver(kdp_tcp *t) {
  t->in_round = false;
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, args[1 + TEXTS_MAX], result;
  napi_get_reference_value(env, t->cb_ref, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, t->count, &args[0]);
  // the scanned reads of at most SCAN_TEXT_MAX bytes and the HTTP/2 header blocks (after the record's 8 bytes) as
  // latin1 strings (made here without the argument checks and the typed array's buffer lookups of a latin1Slice
  // or toString call from JavaScript)
  size_t argc = 1;
  for (int32_t k = 0; k < t->ntexts; k++) {
    int32_t *m = t->meta + t->texts[k] * 4;
    size_t skip = m[3] == H2_RECORD ? 8 : 0;
    if (napi_create_string_latin1(env, (const char *)t->arena + m[1] + skip, (size_t)m[2] - skip, &args[argc]) !=
        napi_ok)
      napi_get_undefined(env, &args[argc]);
    argc++;
  }
  t->ntexts = 0;
  // a throw in JavaScript is an uncaught exception, as from any callback node makes out of its loop
  if (napi_make_callback(env, t->actx, recv, cb, argc, args, &result) == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, scope);
}

#ifdef KDP_H2
// a round of the HTTP/2 sessions in the pump list (input left over when the arena ran short: their descriptors
// may not be ready again); one that runs short again goes back on the list
static void pump_round(kdp_tcp *t) {
  size_t np = t->pump_len < MAX_EVENTS ? t->pump_len : MAX_EVENTS;
  int32_t fds[MAX_EVENTS];
  memcpy(fds, t->pump, np * sizeof *fds);
  memmove(t->pump, t->pump + np, (t->pump_len - np) * sizeof *fds);
  t->pump_len -= np;
  for (size_t i = 0; i < np; i++) {
    int fd = fds[i];
    if ((size_t)fd >= t->slots_len || t->slots[fd].h2 == NULL) continue;
    if ((size_t)t->count + 2 > t->meta_len) {
      pump_add(t, fd);
      continue;
    }
    tls_round(t, &t->slots[fd], t->slots[fd].id, fd);
  }
}
#endif

static tls_slot *slot_for(kdp_tcp *t, int32_t fd, int32_t id, bool make);
static void slot_clear(tls_slot *sl);
static void disown(kdp_tcp *t, int32_t fd, int32_t id);
static int watch_fd(kdp_tcp *t, int fd, int32_t id);

// the connections waiting on listener `lid`: each accepted, watched in peek mode under a new id, reported (flags
// ACCEPTED), its first bytes peeked at once when they are there
static void accept_round(kdp_tcp *t, int lfd, int32_t lid) {
  for (int k = 0; k < ACCEPT_MAX; k++) {
    if (t->arena_len - t->off < TLS_ROOM + 8192 || (size_t)t->count + 3 > t->meta_len) return;
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    int fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) return;
      // out of descriptors or memory: the listener would be ready forever; JavaScript watches it again later (it
      // stays lid's: closeFd still closes it meanwhile)
      int e = errno;
      epoll_ctl(t->ep, EPOLL_CTL_DEL, lfd, NULL);
      RECORD(t, lid, t->off, -e, ACCEPTED);
      return;
    }
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (sa.ss_family == AF_INET6) {
      struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&sa;
      inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof ip);
      port = ntohs(a6->sin6_port);
    } else if (sa.ss_family == AF_INET) {
      struct sockaddr_in *a4 = (struct sockaddr_in *)&sa;
      inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof ip);
      port = ntohs(a4->sin_port);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int32_t id = t->next_id;
    t->next_id = t->next_id == INT32_MAX ? ACCEPT_IDS : t->next_id + 1;
    tls_slot *sl = slot_for(t, fd, id, true);
    if (sl == NULL || watch_fd(t, fd, id) != 0) {
      if (sl) slot_clear(sl);
      close(fd);
      continue;
    }
    sl->mode = MODE_PEEK;
    int n = snprintf((char *)t->arena + t->off, 128, "%d %d %d %s", lid, fd, port, ip);
    RECORD(t, id, t->off, n, ACCEPTED);
    t->off += (size_t)n;
    // the ClientHello is often there already: peeked now, not in a round of its own
    size_t want = t->arena_len - t->off - TLS_ROOM;
    if (want > READ_MAX) want = READ_MAX;
    ssize_t r = recv(fd, t->arena + t->off, want, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    RECORD(t, id, t->off, r < 0 ? -errno : r, 0);
    if (r > 0) t->off += (size_t)r;
  }
}

static void on_ready(uv_poll_t *h, int status, int events) {
  (void)events;
  kdp_tcp *t = h->data;
  if (status < 0) return;
  struct epoll_event evs[MAX_EVENTS];
  size_t max = t->meta_len < MAX_EVENTS ? t->meta_len : MAX_EVENTS;
  int n = epoll_wait(t->ep, evs, (int)max, 0);
  t->off = 0;
  t->count = 0;
  t->hoff = t->meta_len;
  t->ntexts = 0;
  t->in_round = true;
#ifdef KDP_H2
  pump_round(t); // first the sessions with input left from an earlier round
#endif
  for (int i = 0; i < n; i++) {
    if (t->arena_len - t->off < TLS_ROOM + 4096 || (size_t)t->count + 2 > t->meta_len)
      break; // level-triggered: the rest come on the next round
    int fd = (int)(evs[i].data.u64 & 0xffffffffu);
    int32_t id = (int32_t)(evs[i].data.u64 >> 32);
    if ((size_t)fd >= t->owner_len || t->owner[fd] != id) continue;
    if (id < 0) {
      accept_round(t, fd, id);
      continue;
    }
    tls_slot *sl = (size_t)fd < t->slots_len && t->slots[fd].id == id ? &t->slots[fd] : NULL;
    size_t want = t->arena_len - t->off;
    if (want > READ_MAX) want = READ_MAX;
    if (sl == NULL || sl->mode == MODE_PLAIN) {
      ssize_t r = read(fd, t->arena + t->off, want);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      RECORD(t, id, t->off, r < 0 ? -errno : r, 0);
      if (r > 0) {
        scan_record(t, t->arena + t->off, (size_t)r);
        t->off += (size_t)r;
      }
    } else if (sl->mode == MODE_PEEK) {
      // JavaScript attaches an SSL or gives the socket back before the next round (else it would be ready again)
      ssize_t r = recv(fd, t->arena + t->off, want, MSG_PEEK);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      RECORD(t, id, t->off, r < 0 ? -errno : r, 0);
      if (r > 0) t->off += (size_t)r;
    } else {
      SSL *ssl = sl->ssl;
      size_t held = BIO_ctrl_pending(SSL_get_rbio(ssl));
      size_t room = t->arena_len - t->off - TLS_ROOM;
      if (held >= room) continue;
      want = room - held;
      if (want > READ_MAX) want = READ_MAX;
#ifdef KDP_H2
      if (sl->h2 != NULL && h2_queued(sl->h2)) continue; // its session still has input to take (the pump list)
#endif
      ssize_t r = read(fd, t->cipher, want);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (r <= 0) {
        RECORD(t, id, t->off, r < 0 ? -errno : 0, 0);
        continue;
      }
      BIO_write(SSL_get_rbio(ssl), t->cipher, (int)r);
      tls_round(t, sl, id, fd);
    }
  }
  if (t->count == 0) {
    t->in_round = false;
    return;
  }
  deliver(t);
#ifdef KDP_H2
  // input left over (the arena ran short): more rounds now, none of it waits for the descriptor to be ready
  while (t->pump_len > 0) {
    t->off = 0;
    t->count = 0;
    t->hoff = t->meta_len;
    t->ntexts = 0;
    t->in_round = true;
    pump_round(t);
    if (t->count == 0) break;
    deliver(t);
  }
  t->in_round = false;
#endif
}

// create(arena: Buffer, meta: Int32Array (quads), onBatch: (count, ...texts) => void, heads?: Int32Array) -> external
// (heads: where the round's reads get their HTTP/1 head entries, once headNames gave the names; room for the
// meta's records, then the entries)
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_error(env, "EINVAL", "create(arena, meta, onBatch, heads?)");
    return NULL;
  }
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
  t->plain = malloc(READ_MAX);
  t->send_room = malloc(H2_SEND_ROOM);
  if (!t->cipher || !t->plain || !t->send_room) return err_value(env, ENOMEM);
  CHECK(napi_create_reference(env, argv[0], 1, &t->arena_ref));
  CHECK(napi_create_reference(env, argv[1], 1, &t->meta_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &t->cb_ref));
  bool typed = false;
  if (argc > 3) CHECK(napi_is_typedarray(env, argv[3], &typed));
  if (typed) {
    CHECK(napi_get_typedarray_info(env, argv[3], &type, &len, &data, &ab, &byte_off));
    if (type == napi_int32_array && len >= t->meta_len + SCAN_ENTRY) {
      t->heads = data;
      t->heads_len = len;
      CHECK(napi_create_reference(env, argv[3], 1, &t->heads_ref));
      scan_bytes();
    }
  }
  napi_value name;
  CHECK(napi_create_string_utf8(env, "kdp_tcp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &t->actx));
  t->next_id = ACCEPT_IDS;
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

// `fd` in the epoll set under `id`: 0 | errno
static int watch_fd(kdp_tcp *t, int fd, int32_t id) {
  if ((size_t)fd >= t->owner_len) {
    size_t len = t->owner_len ? t->owner_len : 1024;
    while (len <= (size_t)fd) len *= 2;
    int32_t *grown = realloc(t->owner, len * sizeof *grown);
    if (!grown) return ENOMEM;
    memset(grown + t->owner_len, 0, (len - t->owner_len) * sizeof *grown);
    t->owner = grown;
    t->owner_len = len;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)(uint32_t)id << 32) | (uint32_t)fd};
  if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) return errno;
  t->owner[fd] = id;
  return 0;
}

// watch(t, fd, id) -> 0 | -errno
static napi_value watch(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, id;
  if (!socket_args(env, info, &t, &fd, &id)) return NULL;
  if (fd < 0 || id == 0) return err_value(env, EINVAL);
  return err_value(env, watch_fd(t, fd, id));
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

// a slot's SSL and HTTP/2 session are freed; the slot is no socket's
static void slot_clear(tls_slot *sl) {
#ifdef KDP_H2
  h2_free(sl->h2);
#endif
  if (sl->ssl) SSL_free(sl->ssl);
  *sl = (tls_slot){0, MODE_PLAIN, NULL, false, NULL};
}

// forget(t, fd, id): the socket `id` watched under `fd` was closed (which took its registration out of the set,
// unless a forked child still holds the file)
static napi_value forget(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, id;
  if (!socket_args(env, info, &t, &fd, &id)) return NULL;
  disown(t, fd, id);
  if (fd >= 0 && (size_t)fd < t->slots_len && t->slots[fd].id == id) slot_clear(&t->slots[fd]);
  return NULL;
}

// (fd, ...): `want` arguments into argv, the first a descriptor; false with an exception thrown otherwise
static bool fd_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int32_t *fd) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok) {
    napi_throw_error(env, "EINVAL", "expected (fd, ...)");
    return false;
  }
  return true;
}

// writeLatin1(fd, string) -> bytes written | -errno
static napi_value write_latin1(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  if (!fd_args(env, info, 2, argv, &fd)) return NULL;
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

// ------------------------------------------------------------------------------------------- gathered writes
//
// A head the front forwards is mostly runs of the read it came in. A gathered write copies the pieces the spec
// lists (gatherSpec: n int32 pairs) into one buffer and writes that, so JavaScript makes no string of them:
//   [from, to]                             bytes [from, to) of the source (from >= 0)
//   [-1 - k, 0]                            the k-th string argument (latin1), k < GATHER_STRINGS
//   [GATHER_CRLF, 0], [GATHER_COLON, 0]    "\r\n", ": "
// The source is the arena from `base` on (base >= 0: a read of this round), else a Buffer argument. (ingress/
// tcp-io.ts gatherText is the same in JavaScript.)
#define GATHER_STRINGS 4
#define GATHER_CRLF -16
#define GATHER_COLON -17
#define GATHER_ROOM 16384

// gatherSpec(t, spec: Int32Array) -> 0 | -EINVAL: the pieces of gathered writes are read from `spec` from now on
static napi_value gather_spec(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ab;
  kdp_tcp *t;
  napi_typedarray_type type;
  size_t len, boff;
  void *data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || (t = get(env, argv[0])) == NULL ||
      napi_get_typedarray_info(env, argv[1], &type, &len, &data, &ab, &boff) != napi_ok || type != napi_int32_array)
    return err_value(env, EINVAL);
  napi_ref ref;
  if (napi_create_reference(env, argv[1], 1, &ref) != napi_ok) return err_value(env, EINVAL);
  if (t->spec_ref) napi_delete_reference(env, t->spec_ref);
  t->spec_ref = ref;
  t->spec = data;
  t->spec_len = len;
  return err_value(env, 0);
}

// g: base, n, GATHER_STRINGS strings, then the source Buffer when base < 0. The bytes into out (cap bytes): their
// count, or -E2BIG (they do not fit: the caller writes the string instead), -EINVAL (not a spec)
static ssize_t gather(napi_env env, kdp_tcp *t, napi_value *g, size_t ng, char *out, size_t cap) {
  int32_t base, n;
  const uint8_t *src;
  size_t srclen;
  if (napi_get_value_int32(env, g[0], &base) != napi_ok || napi_get_value_int32(env, g[1], &n) != napi_ok || n < 0 ||
      (size_t)n > t->spec_len / 2)
    return -EINVAL;
  if (base >= 0) {
    if ((size_t)base > t->arena_len) return -EINVAL;
    src = t->arena + base;
    srclen = t->arena_len - (size_t)base;
  } else {
    void *p;
    if (ng < 3 + GATHER_STRINGS || napi_get_buffer_info(env, g[2 + GATHER_STRINGS], &p, &srclen) != napi_ok)
      return -EINVAL;
    src = p;
  }
  const int32_t *spec = t->spec;
  size_t o = 0;
  for (int32_t i = 0; i < n; i++) {
    int32_t a = spec[2 * i], b = spec[2 * i + 1];
    if (a >= 0) {
      if (b < a || (size_t)b > srclen) return -EINVAL;
      if ((size_t)(b - a) > cap - o) return -E2BIG;
      memcpy(out + o, src + a, (size_t)(b - a));
      o += (size_t)(b - a);
    } else if (a == GATHER_CRLF || a == GATHER_COLON) {
      if (cap - o < 2) return -E2BIG;
      out[o++] = a == GATHER_CRLF ? '\r' : ':';
      out[o++] = a == GATHER_CRLF ? '\n' : ' ';
    } else {
      int32_t k = -1 - a;
      size_t got, all;
      if (k >= GATHER_STRINGS) return -EINVAL;
      if (cap - o < 2) return -E2BIG;
      // (napi writes at most cap - o - 1 bytes and a NUL: fewer means all of the string)
      if (napi_get_value_string_latin1(env, g[2 + k], out + o, cap - o, &got) != napi_ok) return -EINVAL;
      if (got == cap - o - 1 && (napi_get_value_string_latin1(env, g[2 + k], NULL, 0, &all) != napi_ok || all > got))
        return -E2BIG;
      o += got;
    }
  }
  return (ssize_t)o;
}

// writeGather(t, fd, base, n, s0, s1, s2, s3[, source]) -> the bytes write(2) did not take (0: all) | -errno
// (-E2BIG: more than GATHER_ROOM bytes, nothing written)
static napi_value write_gather(napi_env env, napi_callback_info info) {
  size_t argc = 5 + GATHER_STRINGS;
  napi_value argv[5 + GATHER_STRINGS];
  kdp_tcp *t;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 + GATHER_STRINGS ||
      (t = get(env, argv[0])) == NULL || napi_get_value_int32(env, argv[1], &fd) != napi_ok) {
    napi_throw_error(env, "EINVAL", "expected (t, fd, base, n, s0, s1, s2, s3[, source])");
    return NULL;
  }
  char out[GATHER_ROOM];
  ssize_t len = gather(env, t, argv + 2, argc - 2, out, sizeof out);
  if (len < 0) return err_value(env, (int)-len);
  ssize_t r = len == 0 ? 0 : write(fd, out, (size_t)len);
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return err_value(env, errno);
    r = 0;
  }
  napi_value v;
  napi_create_int32(env, (int32_t)(len - r), &v);
  return v;
}

// listen(t, fd, lid) -> the addon's descriptor for the listening socket | -errno: a copy of node's listening
// descriptor (node then closes its own), watched under `lid` (< 0): its connections are accepted here
static napi_value listen_fd(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, lid;
  if (!socket_args(env, info, &t, &fd, &lid)) return NULL;
  if (fd < 0 || lid >= 0) return err_value(env, EINVAL);
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return err_value(env, errno);
  int fl = fcntl(own, F_GETFL);
  int err = fl < 0 || fcntl(own, F_SETFL, fl | O_NONBLOCK) < 0 ? errno : watch_fd(t, own, lid);
  if (err != 0) {
    close(own);
    return err_value(env, err);
  }
  napi_value v;
  napi_create_int32(env, own, &v);
  return v;
}

// closeFd(t, fd, id) -> 0 | -EBADF: closes a descriptor the addon owns (a listener, or an accepted connection node
// has no socket for), with its SSL and session; -EBADF, nothing closed, when `fd` is not `id`'s
static napi_value close_fd(napi_env env, napi_callback_info info) {
  kdp_tcp *t;
  int32_t fd, id;
  if (!socket_args(env, info, &t, &fd, &id)) return NULL;
  bool owned = fd >= 0 && (size_t)fd < t->owner_len && t->owner[fd] == id;
  bool slotted = fd >= 0 && (size_t)fd < t->slots_len && t->slots[fd].id == id;
  if (!owned && !slotted) return err_value(env, EBADF);
  disown(t, fd, id);
  if (slotted) slot_clear(&t->slots[fd]);
  close(fd); // which takes it out of the epoll set
  return err_value(env, 0);
}

// writeBuffer(fd, buf) -> bytes written | -errno
static napi_value write_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  if (!fd_args(env, info, 2, argv, &fd)) return NULL;
  void *data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  ssize_t r = write(fd, data, len);
  napi_value v;
  napi_create_int32(env, r < 0 ? -errno : (int32_t)r, &v);
  return v;
}

// shutdownWrite(fd) -> 0 | -errno: the end of our side of the stream (FIN)
static napi_value shutdown_write(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!fd_args(env, info, 1, argv, &fd)) return NULL;
  return err_value(env, shutdown(fd, SHUT_WR) < 0 ? errno : 0);
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
  slot_clear(sl); // that socket's descriptor was closed: its number is this one's now
  sl->id = id;
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

// the protocol `name` in the client's ALPN list (length-prefixed names): *out/*outlen point at it; false: absent
static bool alpn_offers(const unsigned char *in, unsigned int inlen, const char *name, const unsigned char **out,
                        unsigned char *outlen) {
  size_t n = strlen(name);
  for (unsigned int i = 0; i < inlen;) {
    unsigned int l = in[i];
    if (i + 1 + l > inlen) break;
    if (l == n && memcmp(in + i + 1, name, n) == 0) {
      *out = in + i + 1;
      *outlen = (unsigned char)n;
      return true;
    }
    i += 1 + l;
  }
  return false;
}

// ALPN: h2 when the client offers it and tlsAttach allowed it (the SSL's app data), else http/1.1 when offered,
// else none
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)arg;
  if (SSL_get_app_data(ssl) != NULL && alpn_offers(in, inlen, "h2", out, outlen)) return SSL_TLSEXT_ERR_OK;
  return alpn_offers(in, inlen, "http/1.1", out, outlen) ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
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
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_error(env, "EINVAL", "expected (certPem, keyPem, cipherList, cipherSuites[, ticketKeys])");
    return NULL;
  }
  void *keys = NULL;
  size_t keys_len = 0;
  bool keys_given = false;
  if (argc > 4) napi_is_buffer(env, argv[4], &keys_given);
  if (keys_given && (napi_get_buffer_info(env, argv[4], &keys, &keys_len) != napi_ok || keys_len != 80)) {
    napi_throw_error(env, "EINVAL", "ticketKeys: 80 bytes (name 16, HMAC 32, AES 32)");
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
  // the processes of one ingress (its workers) share their ticket keys, so a client resumes on any of them
  // (as nginx's workers, which inherit their master's); a session resumes only under the certificate it was
  // made with (the session id context is the certificate's digest), as with a context's own keys: after a
  // Secret's certificate changes, its clients make a full handshake and see the new one
  if (keys_given && SSL_CTX_set_tlsext_ticket_keys(ctx, keys, (long)keys_len) != 1) {
    throw_ssl(env, "ticket keys");
    goto out;
  }
  unsigned char sid[EVP_MAX_MD_SIZE];
  unsigned int sid_len = 0;
  if (EVP_Digest(strs[0], strlen(strs[0]), sid, &sid_len, EVP_sha256(), NULL) != 1 ||
      SSL_CTX_set_session_id_context(ctx, sid, sid_len < SSL_MAX_SID_CTX_LENGTH ? sid_len : SSL_MAX_SID_CTX_LENGTH) != 1) {
    throw_ssl(env, "session id context");
    goto out;
  }
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

// tlsAttach(t, fd, id, ctx, h2) -> 0 | -errno: the socket is TLS from now on (server side, handshake to come);
// `h2`: ALPN may choose h2, and the connection is then an HTTP/2 session here (-EPROTONOSUPPORT: not built in)
static napi_value tls_attach(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  kdp_tcp *t;
  int32_t fd, id;
  if (!tls_args(env, info, 5, argv, &t, &fd, &id)) return NULL;
  bool h2 = false;
  napi_get_value_bool(env, argv[4], &h2);
#ifndef KDP_H2
  if (h2) return err_value(env, EPROTONOSUPPORT);
#endif
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
  if (h2) SSL_set_app_data(ssl, (void *)1);
  sl->ssl = ssl;
  sl->mode = MODE_TLS;
  sl->h2_ok = h2;
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

// len plaintext bytes through the SSL into its write BIO: 0, or EPROTO
static int ssl_put_bytes(SSL *ssl, const char *buf, size_t len) {
  size_t done = 0;
  if (len == 0 || SSL_write_ex(ssl, buf, len, &done) == 1) return 0;
  ERR_clear_error();
  return EPROTO;
}

// the plaintext `data` (a latin1 string or a Buffer) through the SSL into its write BIO: 0, or an errno
static int ssl_put(napi_env env, SSL *ssl, napi_value data) {
  bool isbuf = false;
  napi_is_buffer(env, data, &isbuf);
  char stack[16384];
  char *buf = stack;
  size_t len = 0;
  if (isbuf) {
    void *p;
    if (napi_get_buffer_info(env, data, &p, &len) != napi_ok) return EINVAL;
    buf = p;
  } else {
    if (napi_get_value_string_latin1(env, data, NULL, 0, &len) != napi_ok) return EINVAL;
    if (len >= sizeof stack && (buf = malloc(len + 1)) == NULL) return ENOMEM;
    size_t got = 0;
    if (napi_get_value_string_latin1(env, data, buf, len + 1, &got) != napi_ok) {
      if (buf != stack) free(buf);
      return EINVAL;
    }
    len = got;
  }
  int e = ssl_put_bytes(ssl, buf, len);
  if (!isbuf && buf != stack) free(buf);
  return e;
}

// tlsWrite(t, fd, id, data: string (latin1) | Buffer, direct) -> 0 | Buffer to queue | -errno
static napi_value tls_write(napi_env env, napi_callback_info info) {
  napi_value argv[5], err;
  int32_t fd;
  bool direct;
  SSL *ssl = ssl_args(env, info, 5, argv, &fd, &direct, &err);
  if (!ssl) return err;
  int e = ssl_put(env, ssl, argv[3]);
  return e != 0 ? err_value(env, e) : drain(env, fd, ssl, direct);
}

// tlsHold(t, fd, id, data: string (latin1) | Buffer) -> 0 | -errno: as tlsWrite, but the ciphertext stays in the
// SSL, to go out with what the next tlsWrite, tlsFlush or tlsEnd writes (one write(2) for both)
static napi_value tls_hold(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  kdp_tcp *t;
  int32_t fd, id;
  if (!tls_args(env, info, 4, argv, &t, &fd, &id)) return NULL;
  SSL *ssl = ssl_of(t, fd, id);
  return err_value(env, ssl ? ssl_put(env, ssl, argv[3]) : EBADF);
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

// tlsGather(t, fd, id, hold, direct, base, n, s0, s1, s2, s3[, source]): writeGather's bytes through the SSL, as
// tlsWrite (hold: as tlsHold) -> 0 | Buffer to queue | -errno (-E2BIG: nothing put)
static napi_value tls_gather(napi_env env, napi_callback_info info) {
  size_t argc = 8 + GATHER_STRINGS;
  napi_value argv[8 + GATHER_STRINGS];
  kdp_tcp *t;
  int32_t fd, id;
  bool hold = false, direct = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7 + GATHER_STRINGS ||
      (t = get(env, argv[0])) == NULL || napi_get_value_int32(env, argv[1], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[2], &id) != napi_ok || napi_get_value_bool(env, argv[3], &hold) != napi_ok ||
      napi_get_value_bool(env, argv[4], &direct) != napi_ok) {
    napi_throw_error(env, "EINVAL", "expected (t, fd, id, hold, direct, base, n, s0, s1, s2, s3[, source])");
    return NULL;
  }
  SSL *ssl = ssl_of(t, fd, id);
  if (!ssl) return err_value(env, EBADF);
  char out[GATHER_ROOM];
  ssize_t len = gather(env, t, argv + 5, argc - 5, out, sizeof out);
  if (len < 0) return err_value(env, (int)-len);
  int e = ssl_put_bytes(ssl, out, (size_t)len);
  return e != 0 || hold ? err_value(env, e) : drain(env, fd, ssl, direct);
}

#ifdef KDP_H2
// ----------------------------------------------------------------------------------------------------- HTTP/2
//
// A TLS connection whose ALPN chose h2 (tlsAttach allowed it) gets an nghttp2 server session here. Its
// plaintext goes into the session; what JavaScript gets are records (flags H2_RECORD) whose bytes in the arena
// start with an 8-byte head: kind (u8), frame flags (u8), 2 unused bytes, stream id (int32, host order), then:
//   H2_HEADERS: the request's header fields, name NUL value NUL ... (pseudo-headers first, as received); byte 2
//     of the head: H2_UNIQUE_NAMES (no name twice), H2_CLEAN_VALUES (no value has a byte 0x00-0x08, 0x0a-0x1f or
//     0x7f), each set only when known to hold;
//   H2_DATA: body bytes (flag END_STREAM on the last, possibly empty, record);
//   H2_CLOSE: the stream is closed, uint32 error code (0: done);
// The response goes back with h2Respond / h2Data / h2Trailers / h2Reset, frames are made by h2Flush (the
// SSL's ciphertext then goes out as for tlsWrite). Request bodies are flow-controlled by h2Consume: the window
// opens only for what JavaScript took.
#define H2_HEADERS 1
#define H2_DATA 2
#define H2_CLOSE 3
#define H2_UNIQUE_NAMES 1
#define H2_CLEAN_VALUES 2
// a header block's names compared for H2_UNIQUE_NAMES: more than this many, and it is not set
#define H2_NAMES 32
// the arena room under which a session stops taking input for this round (a header block is at most
// H2_MAX_HEADERS, a DATA chunk at most 16 KiB)
#define H2_MAX_HEADERS (64 * 1024)
#define H2_SLICE 2048
#define H2_SLICE_RECORDS (2 * H2_SLICE / 9 + 2)
#define H2_ROOM (2 * (H2_MAX_HEADERS + 16 * 1024 + 64) + H2_SLICE_RECORDS * 12)

#define H2_OUT_SMALL 512
typedef struct h2_out {
  struct h2_out *prev, *next; // the session's responses in progress
  uint8_t *buf; // queued body bytes: [pos, len); `small` until more is queued
  size_t len, cap, pos;
  bool end;      // the body ends after buf
  bool deferred; // the data source said DEFERRED: resume when bytes come
  nghttp2_nv *trailers;
  size_t ntrailers;
  uint8_t *trailer_bytes;
  uint8_t small[H2_OUT_SMALL]; // (most bodies the lane answers are small: no allocation for them)
} h2_out;

typedef struct h2_conn {
  nghttp2_session *s;
  kdp_tcp *t;
  int32_t id;
  uint8_t *pending; // plaintext the session has not taken yet
  size_t pending_len;
  uint8_t *hb; // the header block being received
  size_t hb_len, hb_cap;
  bool hb_over; // over H2_MAX_HEADERS: the stream is reset
  uint8_t hb_flags;                    // H2_UNIQUE_NAMES | H2_CLEAN_VALUES, as far as known
  uint32_t hb_names[H2_NAMES];         // the block's names so far: offset in hb
  uint8_t hb_name_len[H2_NAMES];       // and length (names of 256 bytes or more: not compared, not unique)
  size_t hb_count;
  bool queued;  // in the pump list
  h2_out *outs;
} h2_conn;

static void pump_add(kdp_tcp *t, int32_t fd) {
  if (t->pump_len == t->pump_cap) {
    size_t cap = t->pump_cap ? t->pump_cap * 2 : 64;
    int32_t *g = realloc(t->pump, cap * sizeof *g);
    if (!g) return;
    t->pump = g;
    t->pump_cap = cap;
  }
  t->pump[t->pump_len++] = fd;
}

// a record for JavaScript (only during a round: the session's input; a stream closed by what JavaScript sent
// outside a round is not reported, JavaScript ended it itself)
static uint8_t *h2_record(kdp_tcp *t, h2_conn *c, uint8_t kind, uint8_t flags, int32_t stream, size_t len) {
  // (h2_full keeps room for what one slice of input makes; this is the last guard)
  if (!t->in_round || (size_t)t->count >= t->meta_len || t->arena_len - t->off < len + 8) return NULL;
  uint8_t *p = t->arena + t->off;
  p[0] = kind;
  p[1] = flags;
  p[2] = p[3] = 0;
  memcpy(p + 4, &stream, 4);
  RECORD(t, c->id, t->off, len + 8, H2_RECORD);
  t->off += len + 8;
  return p + 8;
}

// the session must stop taking input this round: the arena is short of room, or of records
static bool h2_full(kdp_tcp *t) {
  return t->arena_len - t->off < H2_ROOM || (size_t)t->count + H2_SLICE_RECORDS + 4 > t->meta_len;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)s;
  h2_conn *c = ud;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  c->hb_len = 0;
  c->hb_over = false;
  c->hb_flags = H2_UNIQUE_NAMES | H2_CLEAN_VALUES;
  c->hb_count = 0;
  return 0;
}

// a name and value of the block being received, against H2_UNIQUE_NAMES and H2_CLEAN_VALUES (hb holds the names
// before it)
static void header_flags(h2_conn *c, const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen) {
  if (c->hb_flags & H2_UNIQUE_NAMES) {
    if (c->hb_count == H2_NAMES || namelen > 255) c->hb_flags &= ~H2_UNIQUE_NAMES;
    else {
      for (size_t i = 0; i < c->hb_count; i++)
        if (c->hb_name_len[i] == namelen && memcmp(c->hb + c->hb_names[i], name, namelen) == 0) {
          c->hb_flags &= ~H2_UNIQUE_NAMES;
          break;
        }
      c->hb_names[c->hb_count] = (uint32_t)c->hb_len;
      c->hb_name_len[c->hb_count++] = (uint8_t)namelen;
    }
  }
  if (c->hb_flags & H2_CLEAN_VALUES)
    for (size_t i = 0; i < valuelen; i++)
      if ((value[i] < 0x20 && value[i] != 0x09) || value[i] == 0x7f) {
        c->hb_flags &= ~H2_CLEAN_VALUES;
        break;
      }
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
  (void)flags;
  h2_conn *c = ud;
  if (f->hd.type != NGHTTP2_HEADERS || c->hb_over) return 0;
  size_t need = c->hb_len + namelen + valuelen + 2;
  if (need > H2_MAX_HEADERS) {
    c->hb_over = true;
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (need > c->hb_cap) {
    size_t cap = c->hb_cap ? c->hb_cap : 1024;
    while (cap < need) cap *= 2;
    uint8_t *g = realloc(c->hb, cap);
    if (!g) return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->hb = g;
    c->hb_cap = cap;
  }
  header_flags(c, name, namelen, value, valuelen);
  memcpy(c->hb + c->hb_len, name, namelen);
  c->hb[c->hb_len + namelen] = 0;
  memcpy(c->hb + c->hb_len + namelen + 1, value, valuelen);
  c->hb[need - 1] = 0;
  c->hb_len = need;
  return h2_full(c->t) ? NGHTTP2_ERR_PAUSE : 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  (void)s;
  h2_conn *c = ud;
  kdp_tcp *t = c->t;
  if (f->hd.type == NGHTTP2_HEADERS && !c->hb_over && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    uint8_t *p = h2_record(t, c, H2_HEADERS, f->hd.flags & NGHTTP2_FLAG_END_STREAM, f->hd.stream_id, c->hb_len);
    if (!p) return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(p, c->hb, c->hb_len);
    p[-6] = c->hb_flags; // (byte 2 of the record's head)
    c->hb_len = 0;
    if (t->heads != NULL && t->ntexts < texts_max) {
      t->heads[t->count - 1] = -1 - t->ntexts;
      t->texts[t->ntexts++] = t->count - 1;
    }
  } else if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
             f->headers.cat == NGHTTP2_HCAT_HEADERS) {
    // request trailers: dropped (as the HTTP/1.1 front drops chunked trailers); the body ends here
    if (!h2_record(t, c, H2_DATA, NGHTTP2_FLAG_END_STREAM, f->hd.stream_id, 0)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  } else if (f->hd.type == NGHTTP2_DATA && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    if (!h2_record(t, c, H2_DATA, NGHTTP2_FLAG_END_STREAM, f->hd.stream_id, 0)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data, size_t len,
                         void *ud) {
  (void)s;
  (void)flags;
  h2_conn *c = ud;
  uint8_t *p = h2_record(c->t, c, H2_DATA, 0, stream, len);
  if (!p) return NGHTTP2_ERR_CALLBACK_FAILURE;
  memcpy(p, data, len);
  return h2_full(c->t) ? NGHTTP2_ERR_PAUSE : 0;
}

static void out_free_unlinked(h2_out *o) {
  if (o->buf != o->small) free(o->buf);
  free(o->trailers);
  free(o->trailer_bytes);
  free(o);
}

static void out_free(h2_conn *c, h2_out *o) {
  if (!o) return;
  if (o->prev) o->prev->next = o->next;
  else c->outs = o->next;
  if (o->next) o->next->prev = o->prev;
  out_free_unlinked(o);
}

static int on_stream_close(nghttp2_session *s, int32_t stream, uint32_t code, void *ud) {
  h2_conn *c = ud;
  out_free(c, nghttp2_session_get_stream_user_data(s, stream));
  nghttp2_session_set_stream_user_data(s, stream, NULL);
  uint8_t *p = h2_record(c->t, c, H2_CLOSE, 0, stream, 4);
  if (p) memcpy(p, &code, 4);
  else if (c->t->in_round) return NGHTTP2_ERR_CALLBACK_FAILURE; // (cannot be: h2_full keeps room)
  return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
  (void)ud;
  h2_out *o = src->ptr;
  size_t have = o->len - o->pos;
  if (have == 0 && !o->end) {
    o->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = have < length ? have : length;
  memcpy(buf, o->buf + o->pos, n);
  o->pos += n;
  if (o->pos == o->len) o->pos = o->len = 0;
  if (o->end && o->len == 0) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (o->ntrailers > 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_trailer(s, stream, o->trailers, o->ntrailers);
    }
  }
  return (ssize_t)n;
}

static bool h2_start(kdp_tcp *t, tls_slot *sl) {
  h2_conn *c = calloc(1, sizeof *c);
  if (!c) return false;
  c->t = t;
  c->id = sl->id;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    free(c);
    return false;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  int rv = nghttp2_option_new(&opt);
  if (rv == 0) {
    // request bodies: the window opens as JavaScript takes the bytes (h2Consume), not as they arrive
    nghttp2_option_set_no_auto_window_update(opt, 1);
    rv = nghttp2_session_server_new2(&c->s, cbs, c, opt);
    nghttp2_option_del(opt);
  }
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    free(c);
    return false;
  }
  // as nginx: 128 streams at once; request header blocks up to H2_MAX_HEADERS
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 128},
                                 {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_MAX_HEADERS}};
  nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2);
  sl->h2 = c;
  return true;
}

static bool h2_queued(h2_conn *c) {
  return c->queued;
}

static void h2_free(h2_conn *c) {
  if (!c) return;
  nghttp2_session_del(c->s); // no callbacks: the responses still in progress are freed here
  while (c->outs) out_free(c, c->outs);
  free(c->pending);
  free(c->hb);
  free(c);
}

static bool h2_write(SSL *ssl, const uint8_t *p, size_t n) {
  size_t done;
  if (SSL_write_ex(ssl, p, n, &done) == 1) return true;
  ERR_clear_error();
  return false;
}
// the session's frames into the SSL (its ciphertext then waits in the write BIO); false on a fatal error. The
// frames are gathered into writes of up to H2_SEND_ROOM bytes: one TLS record for a response's HEADERS and DATA,
// as nginx's send chain makes (an SSL_write is ~5.5k instructions under callgrind)
static bool h2_send(SSL *ssl, h2_conn *c) {
  uint8_t *room = c->t->send_room;
  size_t used = 0;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->s, &data);
    if (n < 0) return false;
    if (n == 0) break;
    if (used + (size_t)n > H2_SEND_ROOM && used > 0) {
      if (!h2_write(ssl, room, used)) return false;
      used = 0;
    }
    if ((size_t)n >= H2_SEND_ROOM) {
      if (!h2_write(ssl, data, (size_t)n)) return false;
      continue;
    }
    // (data is nghttp2's until the next call)
    memcpy(room + used, data, (size_t)n);
    used += (size_t)n;
  }
  return used == 0 || h2_write(ssl, room, used);
}

// keeps `in[0, len)` as the session's pending input (what it has not taken yet); false without memory
static bool h2_keep(h2_conn *c, const uint8_t *in, size_t len) {
  if (len == 0) {
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    return true;
  }
  if (in == c->pending) {
    c->pending_len = len;
    return true;
  }
  uint8_t *p = malloc(len);
  if (!p) return false;
  memcpy(p, in, len);
  free(c->pending);
  c->pending = p;
  c->pending_len = len;
  return true;
}

// one round of an HTTP/2 connection: its pending input, then the SSL's plaintext, into the session, as long as
// the arena and the records have room; -> 1 (more to come), 0 (the session is done: close), -errno. The input
// goes in slices of H2_SLICE bytes: a frame is at least 9 bytes and makes at most 2 records (a DATA chunk and
// its end, a stream's close), so a slice makes at most H2_SLICE_RECORDS records besides the paused ones.
static int h2_round(kdp_tcp *t, tls_slot *sl, int fd) {
  h2_conn *c = sl->h2;
  SSL *ssl = sl->ssl;
  c->queued = false;
  int end = 1;
  while (end == 1) {
    const uint8_t *in;
    size_t len;
    if (c->pending_len > 0) {
      in = c->pending;
      len = c->pending_len;
    } else if (h2_full(t)) {
      // the arena is short (other sockets' reads filled it): what the SSL holds goes on in a round of its own, as
      // the socket may not be readable again (its bytes are all in the SSL already)
      if (BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0 || SSL_pending(ssl) > 0) {
        pump_add(t, fd);
        c->queued = true;
      }
      break;
    } else {
      size_t n1 = 0;
      if (SSL_read_ex(ssl, t->plain, READ_MAX, &n1) != 1) {
        int e = SSL_get_error(ssl, 0);
        if (e != SSL_ERROR_WANT_READ) end = e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
        ERR_clear_error();
        break;
      }
      in = t->plain;
      len = n1;
    }
    size_t used = 0;
    while (used < len && !h2_full(t)) {
      size_t n = len - used < H2_SLICE ? len - used : H2_SLICE;
      ssize_t r = nghttp2_session_mem_recv(c->s, in + used, n);
      if (r < 0) {
        end = -EPROTO; // nghttp2 queued a GOAWAY; it goes out with the flush below
        break;
      }
      used += (size_t)r;
    }
    if (end != 1) break;
    if (!h2_keep(c, in + used, len - used)) {
      end = -ENOMEM;
      break;
    }
    if (c->pending_len > 0) {
      // the arena or the records ran short: the rest in a round of its own (pump list)
      pump_add(t, fd);
      c->queued = true;
      break;
    }
  }
  if (!h2_send(ssl, c) && end == 1) end = -EPROTO;
  if (end == 1 && !nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s)) end = 0;
  return end;
}

// the HTTP/2 session of (t, fd, id, [stream, ...]) and its SSL (with `stream`: argv[3] read into it); NULL (an
// exception thrown, or *err set) otherwise
static h2_conn *h2_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int32_t *fd, SSL **ssl,
                        int32_t *stream, napi_value *err) {
  kdp_tcp *t;
  int32_t id;
  *err = NULL;
  if (!tls_args(env, info, want, argv, &t, fd, &id)) return NULL;
  tls_slot *sl = slot_for(t, *fd, id, false);
  if (!sl || sl->mode != MODE_TLS || !sl->h2) {
    *err = err_value(env, EBADF);
    return NULL;
  }
  if (stream && napi_get_value_int32(env, argv[3], stream) != napi_ok) {
    *err = err_value(env, EINVAL);
    return NULL;
  }
  *ssl = sl->ssl;
  return sl->h2;
}

// the response in progress of a stream (h2Respond made it); NULL with *err -ENOENT: reset, closed, or none
static h2_out *out_of(napi_env env, h2_conn *c, int32_t stream, napi_value *err) {
  h2_out *o = nghttp2_session_get_stream_user_data(c->s, stream);
  if (!o) *err = err_value(env, ENOENT);
  return o;
}

// the data source said DEFERRED: bytes (or the end) came, nghttp2 asks it again
static void out_resume(h2_conn *c, h2_out *o, int32_t stream) {
  if (!o->deferred) return;
  o->deferred = false;
  nghttp2_session_resume_data(c->s, stream);
}

// name NUL value NUL ... (a latin1 string) -> nghttp2_nv array over a copy of the bytes; count in *n
static nghttp2_nv *nv_of(napi_env env, napi_value v, size_t *n, uint8_t **bytes) {
  size_t len;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok) return NULL;
  uint8_t *b = malloc(len + 1);
  if (!b) return NULL;
  size_t got;
  napi_get_value_string_latin1(env, v, (char *)b, len + 1, &got);
  size_t count = 0;
  for (size_t i = 0; i < got; i++)
    if (b[i] == 0) count++;
  nghttp2_nv *nv = calloc(count / 2 + 1, sizeof *nv);
  if (!nv) {
    free(b);
    return NULL;
  }
  size_t k = 0, i = 0;
  while (i < got && k < count / 2) {
    uint8_t *name = b + i;
    size_t nl = strlen((char *)name);
    uint8_t *value = name + nl + 1;
    size_t vl = strlen((char *)value);
    nv[k++] = (nghttp2_nv){name, value, nl, vl, NGHTTP2_NV_FLAG_NONE};
    i += nl + vl + 2;
  }
  *n = k;
  *bytes = b;
  return nv;
}

static bool append(h2_out *o, const uint8_t *p, size_t len) {
  if (o->pos > 0 && o->pos == o->len) o->pos = o->len = 0;
  if (o->len + len > o->cap) {
    if (o->pos > 0) {
      memmove(o->buf, o->buf + o->pos, o->len - o->pos);
      o->len -= o->pos;
      o->pos = 0;
    }
    if (o->len + len > o->cap) {
      size_t cap = o->cap > H2_OUT_SMALL ? o->cap : 1024;
      while (cap < o->len + len) cap *= 2;
      uint8_t *g = o->buf == o->small ? malloc(cap) : realloc(o->buf, cap);
      if (!g) return false;
      if (o->buf == o->small) memcpy(g, o->small, o->len);
      o->buf = g;
      o->cap = cap;
    }
  }
  memcpy(o->buf + o->len, p, len);
  o->len += len;
  return true;
}

// body bytes of a napi value: a Buffer or a latin1 string (copied into *tmp when a string)
static bool bytes_of(napi_env env, napi_value v, const uint8_t **p, size_t *len, uint8_t **tmp) {
  bool isbuf = false;
  *tmp = NULL;
  napi_is_buffer(env, v, &isbuf);
  if (isbuf) {
    void *d;
    if (napi_get_buffer_info(env, v, &d, len) != napi_ok) return false;
    *p = d;
    return true;
  }
  size_t l;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &l) != napi_ok) return false;
  *tmp = malloc(l + 1);
  if (!*tmp) return false;
  napi_get_value_string_latin1(env, v, (char *)*tmp, l + 1, len);
  *p = *tmp;
  return true;
}

// a body chunk (a Buffer or a latin1 string; null: none) onto the stream's queue; false without memory
static bool append_value(napi_env env, h2_out *o, napi_value v) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type == napi_null) return true;
  const uint8_t *p;
  size_t len;
  uint8_t *tmp;
  bool ok = bytes_of(env, v, &p, &len, &tmp) && append(o, p, len);
  free(tmp);
  return ok;
}

// A response head given as HTTP/1 header lines ("Name: value\r\n" ...) -> nghttp2_nv: what ingress/h2-session.ts's
// headerBlock does with a header list, in C: `:status` first, names lower-cased, values without surrounding SP and
// HTAB, a Date added when there is none. EBADMSG when HTTP/2 cannot carry the list: a single-value header twice
// (node:http2's list), a connection-specific header (RFC 9113 8.2.2), a value with NUL, CR or LF, a line that is
// not `token ":" value CRLF` (node:http2's respond() refuses a name that is not a token too).
typedef struct {
  const char *s;
  size_t len;
} h2_name;
#define H2_NAME(x) {x, sizeof x - 1}
#define COUNT(a) (sizeof a / sizeof a[0])
static const h2_name H2_ONCE[] = {
    H2_NAME("access-control-allow-credentials"), H2_NAME("access-control-max-age"),
    H2_NAME("access-control-request-method"), H2_NAME("age"), H2_NAME("authorization"), H2_NAME("content-encoding"),
    H2_NAME("content-language"), H2_NAME("content-length"), H2_NAME("content-location"), H2_NAME("content-md5"),
    H2_NAME("content-range"), H2_NAME("content-type"), H2_NAME("date"), H2_NAME("dnt"), H2_NAME("etag"),
    H2_NAME("expires"), H2_NAME("from"), H2_NAME("host"), H2_NAME("if-match"), H2_NAME("if-modified-since"),
    H2_NAME("if-none-match"), H2_NAME("if-range"), H2_NAME("if-unmodified-since"), H2_NAME("last-modified"),
    H2_NAME("location"), H2_NAME("max-forwards"), H2_NAME("proxy-authorization"), H2_NAME("range"),
    H2_NAME("referer"), H2_NAME("retry-after"), H2_NAME("tk"), H2_NAME("upgrade-insecure-requests"),
    H2_NAME("user-agent"), H2_NAME("x-content-type-options"),
};
#define H2_DATE_INDEX 12
static const h2_name H2_CONNECTION_SPECIFIC[] = {
    H2_NAME("connection"), H2_NAME("keep-alive"), H2_NAME("proxy-connection"), H2_NAME("transfer-encoding"),
    H2_NAME("upgrade"),
};

static int name_index(const uint8_t *n, size_t len, const h2_name *list, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (list[i].len == len && list[i].s[0] == n[0] && memcmp(list[i].s, n, len) == 0) return (int)i;
  return -1;
}

// a header name's byte: 0 when it is not a token character, else the byte lower-cased
static uint8_t NAME_BYTE[256];
static void name_bytes(void) {
  if (NAME_BYTE['a']) return;
  for (int c = 0; c < 256; c++)
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL))
      NAME_BYTE[c] = (uint8_t)c;
    else if (c >= 'A' && c <= 'Z') NAME_BYTE[c] = (uint8_t)(c + 32);
}

// the Date of a response that has none (the text of the current second, kept for the second)
static const char *http_date(void) {
  static char text[32];
  static time_t second = -1;
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  if (now != second) {
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    second = now;
  }
  return text;
}

// `b` (len bytes: header lines, lower-cased in place) and `status` (its bytes kept by the caller) -> nv, count in
// *n; 0, EBADMSG or ENOMEM. `*out` is `room` (H2_NV_ROOM entries) when the list fits, else allocated.
#define H2_NV_ROOM 64
static int lines_nv(uint8_t *status, size_t slen, uint8_t *b, size_t len, nghttp2_nv *room, nghttp2_nv **out,
                    size_t *n) {
  name_bytes();
  size_t lines = 0;
  for (uint8_t *p = b; (p = memchr(p, '\n', len - (size_t)(p - b))) != NULL; p++) lines++;
  nghttp2_nv *nv = lines + 2 <= H2_NV_ROOM ? room : malloc((lines + 2) * sizeof *nv);
  if (!nv) return ENOMEM;
  size_t k = 0;
  nv[k++] = (nghttp2_nv){(uint8_t *)":status", status, 7, slen, NGHTTP2_NV_FLAG_NONE};
  uint64_t seen = 0;
  size_t i = 0;
  while (i < len) {
    uint8_t *line = b + i;
    uint8_t *eol = memchr(line, '\r', len - i);
    uint8_t *colon = eol ? memchr(line, ':', (size_t)(eol - line)) : NULL;
    if (!colon || colon == line || eol + 1 >= b + len || eol[1] != '\n') goto bad;
    size_t nl = (size_t)(colon - line);
    for (size_t j = 0; j < nl; j++)
      if ((line[j] = NAME_BYTE[line[j]]) == 0) goto bad;
    uint8_t *v = colon + 1, *e = eol;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (memchr(v, 0, (size_t)(e - v)) || memchr(v, '\n', (size_t)(e - v))) goto bad;
    if (name_index(line, nl, H2_CONNECTION_SPECIFIC, COUNT(H2_CONNECTION_SPECIFIC)) >= 0) goto bad;
    int once = name_index(line, nl, H2_ONCE, COUNT(H2_ONCE));
    if (once >= 0) {
      if (seen & (1ull << once)) goto bad;
      seen |= 1ull << once;
    }
    nv[k++] = (nghttp2_nv){line, v, nl, (size_t)(e - v), NGHTTP2_NV_FLAG_NONE};
    i = (size_t)(eol - b) + 2;
  }
  if (!(seen & (1ull << H2_DATE_INDEX))) {
    const char *d = http_date();
    nv[k++] = (nghttp2_nv){(uint8_t *)"date", (uint8_t *)d, 4, strlen(d), NGHTTP2_NV_FLAG_NONE};
  }
  *out = nv;
  *n = k;
  return 0;
bad:
  if (nv != room) free(nv);
  return EBADMSG;
}

// a latin1 string's bytes (the length in *len): into `room` (cap bytes) when they fit, else into a new buffer;
// NULL without memory
static uint8_t *latin1_copy(napi_env env, napi_value v, size_t *len, uint8_t *room, size_t cap) {
  // (napi writes at most cap - 1 bytes and a NUL: fewer means all of them)
  if (room && napi_get_value_string_latin1(env, v, (char *)room, cap, len) == napi_ok && *len < cap - 1) return room;
  size_t l;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &l) != napi_ok) return NULL;
  uint8_t *b = malloc(l + 1);
  if (b) napi_get_value_string_latin1(env, v, (char *)b, l + 1, len);
  return b;
}

// the response head (nv, n) and its first body bytes (`body`: a napi value, null for none); `end`: nothing follows
static int submit_response(napi_env env, h2_conn *c, int32_t stream, nghttp2_nv *nv, size_t n, napi_value body,
                           bool end, size_t *queued) {
  napi_valuetype bt;
  napi_typeof(env, body, &bt);
  *queued = 0;
  if (end && bt == napi_null) return nghttp2_submit_response(c->s, stream, nv, n, NULL);
  h2_out *o = malloc(sizeof *o);
  if (!o) return NGHTTP2_ERR_NOMEM;
  memset(o, 0, offsetof(h2_out, small));
  o->buf = o->small;
  o->cap = H2_OUT_SMALL;
  if (!append_value(env, o, body)) {
    out_free_unlinked(o);
    return NGHTTP2_ERR_NOMEM;
  }
  o->end = end;
  *queued = o->len;
  nghttp2_data_provider dp = {.source.ptr = o, .read_callback = read_body};
  o->next = c->outs;
  if (c->outs) c->outs->prev = o;
  c->outs = o;
  int rv = nghttp2_submit_response(c->s, stream, nv, n, &dp);
  if (rv == 0) nghttp2_session_set_stream_user_data(c->s, stream, o);
  else out_free(c, o);
  return rv;
}

// h2Respond(t, fd, id, stream, headers, body: Buffer | string | null, end) -> queued body bytes | -errno:
// the response head (and its first body bytes); `end`: nothing follows (no DATA at all when there is no body)
static napi_value h2_respond(napi_env env, napi_callback_info info) {
  napi_value argv[7], err;
  int32_t fd, stream;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 7, argv, &fd, &ssl, &stream, &err);
  if (!c) return err;
  bool end = false;
  napi_get_value_bool(env, argv[6], &end);
  size_t n, queued;
  uint8_t *nvb;
  nghttp2_nv *nv = nv_of(env, argv[4], &n, &nvb);
  if (!nv) return err_value(env, ENOMEM);
  int rv = submit_response(env, c, stream, nv, n, argv[5], end, &queued);
  free(nv);
  free(nvb);
  return err_value(env, rv == 0 ? -(int)queued : rv == NGHTTP2_ERR_NOMEM ? ENOMEM : EINVAL);
}

// A response head from JavaScript (a status and HTTP/1 header lines) as nghttp2's list, on the stack when it fits
typedef struct {
  char status[8];
  uint8_t room[4096];
  nghttp2_nv nv_room[H2_NV_ROOM];
  uint8_t *lines;
  nghttp2_nv *nv;
  size_t n;
} h2_head;

// 0, or EINVAL (not a 3-digit status), ENOMEM, EBADMSG (lines_nv); head_free after 0 only
static int head_of(napi_env env, napi_value status, napi_value lines, h2_head *h) {
  size_t slen = 0, len = 0;
  if (napi_get_value_string_latin1(env, status, h->status, sizeof h->status, &slen) != napi_ok || slen != 3)
    return EINVAL;
  h->lines = latin1_copy(env, lines, &len, h->room, sizeof h->room);
  if (!h->lines) return ENOMEM;
  int bad = lines_nv((uint8_t *)h->status, slen, h->lines, len, h->nv_room, &h->nv, &h->n);
  if (bad && h->lines != h->room) free(h->lines);
  return bad;
}

static void head_free(h2_head *h) {
  if (h->nv != h->nv_room) free(h->nv);
  if (h->lines != h->room) free(h->lines);
}

// h2RespondLines(t, fd, id, stream, status, lines, body, end) -> queued body bytes | -errno: h2Respond with the
// head as a status ("200") and HTTP/1 header lines (lines_nv); -EBADMSG, nothing sent: HTTP/2 cannot carry them
static napi_value h2_respond_lines(napi_env env, napi_callback_info info) {
  napi_value argv[8], err;
  int32_t fd, stream;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 8, argv, &fd, &ssl, &stream, &err);
  if (!c) return err;
  bool end = false;
  napi_get_value_bool(env, argv[7], &end);
  h2_head h;
  int bad = head_of(env, argv[4], argv[5], &h);
  if (bad) return err_value(env, bad);
  size_t queued;
  int rv = submit_response(env, c, stream, h.nv, h.n, argv[6], end, &queued);
  head_free(&h);
  return err_value(env, rv == 0 ? -(int)queued : rv == NGHTTP2_ERR_NOMEM ? ENOMEM : EINVAL);
}

// h2Lines(status, lines) -> "name NUL value NUL ..." | -errno: head_of alone, for tests (the Date included)
static napi_value h2_lines(napi_env env, napi_callback_info info) {
  napi_value argv[2], v;
  size_t argc = 2;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return err_value(env, EINVAL);
  h2_head h;
  int bad = head_of(env, argv[0], argv[1], &h);
  if (bad) return err_value(env, bad);
  size_t total = 0, o = 0;
  for (size_t i = 0; i < h.n; i++) total += h.nv[i].namelen + h.nv[i].valuelen + 2;
  char *out = malloc(total + 1);
  for (size_t i = 0; out && i < h.n; i++) {
    memcpy(out + o, h.nv[i].name, h.nv[i].namelen);
    out[o + h.nv[i].namelen] = 0;
    memcpy(out + o + h.nv[i].namelen + 1, h.nv[i].value, h.nv[i].valuelen);
    out[o + h.nv[i].namelen + 1 + h.nv[i].valuelen] = 0;
    o += h.nv[i].namelen + h.nv[i].valuelen + 2;
  }
  head_free(&h);
  if (!out) return err_value(env, ENOMEM);
  napi_create_string_latin1(env, out, o, &v);
  free(out);
  return v;
}

// h2Data(t, fd, id, stream, body: Buffer | string | null, end) -> queued body bytes | -errno
static napi_value h2_data(napi_env env, napi_callback_info info) {
  napi_value argv[6], err;
  int32_t fd, stream;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 6, argv, &fd, &ssl, &stream, &err);
  h2_out *o = c ? out_of(env, c, stream, &err) : NULL; // (reset or closed: nothing to send to)
  if (!o) return err;
  if (!append_value(env, o, argv[4])) return err_value(env, ENOMEM);
  bool end = false;
  napi_get_value_bool(env, argv[5], &end);
  if (end) o->end = true;
  out_resume(c, o, stream);
  return err_value(env, -(int)(o->len - o->pos));
}

// h2Trailers(t, fd, id, stream, headers) -> 0 | -errno: trailers after the body (which ends with them)
static napi_value h2_trailers(napi_env env, napi_callback_info info) {
  napi_value argv[5], err;
  int32_t fd, stream;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 5, argv, &fd, &ssl, &stream, &err);
  h2_out *o = c ? out_of(env, c, stream, &err) : NULL;
  if (!o) return err;
  free(o->trailers);
  free(o->trailer_bytes);
  o->trailers = nv_of(env, argv[4], &o->ntrailers, &o->trailer_bytes);
  if (!o->trailers) return err_value(env, ENOMEM);
  o->end = true;
  out_resume(c, o, stream);
  return err_value(env, 0);
}

// h2Reset(t, fd, id, stream, code) -> 0 | -errno
static napi_value h2_reset(napi_env env, napi_callback_info info) {
  napi_value argv[5], err;
  int32_t fd, stream;
  uint32_t code = 0;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 5, argv, &fd, &ssl, &stream, &err);
  if (!c) return err;
  napi_get_value_uint32(env, argv[4], &code);
  return err_value(env, nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, stream, code) == 0 ? 0 : EINVAL);
}

// h2Consume(t, fd, id, stream, bytes) -> 0 | -errno: JavaScript took that much of the stream's request body
static napi_value h2_consume(napi_env env, napi_callback_info info) {
  napi_value argv[5], err;
  int32_t fd, stream;
  uint32_t n = 0;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 5, argv, &fd, &ssl, &stream, &err);
  if (!c) return err;
  napi_get_value_uint32(env, argv[4], &n);
  nghttp2_session_consume(c->s, stream, n); // a stream already closed: only the connection's window
  return err_value(env, 0);
}

// h2Goaway(t, fd, id) -> 0 | -errno: no new streams (the ones open finish; then the session is done)
static napi_value h2_goaway(napi_env env, napi_callback_info info) {
  napi_value argv[3], err;
  int32_t fd;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 3, argv, &fd, &ssl, NULL, &err);
  if (!c) return err;
  int32_t last = nghttp2_session_get_last_proc_stream_id(c->s);
  return err_value(env, nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0) == 0 ? 0
                                                                                                          : EINVAL);
}

// h2Flush(t, fd, id, direct) -> 0 | Buffer to queue | -errno: the frames submitted since, out through the SSL
static napi_value h2_flush(napi_env env, napi_callback_info info) {
  napi_value argv[4], err;
  int32_t fd;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 4, argv, &fd, &ssl, NULL, &err);
  if (!c) return err;
  bool direct = false;
  napi_get_value_bool(env, argv[3], &direct);
  if (!h2_send(ssl, c)) return err_value(env, EPROTO);
  return drain(env, fd, ssl, direct);
}

// h2State(t, fd, id, stream) -> queued body bytes of the stream (-ENOENT: none), for backpressure
static napi_value h2_state(napi_env env, napi_callback_info info) {
  napi_value argv[4], err;
  int32_t fd, stream;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 4, argv, &fd, &ssl, &stream, &err);
  h2_out *o = c ? out_of(env, c, stream, &err) : NULL;
  if (!o) return err;
  return err_value(env, -(int)(o->len - o->pos));
}

// h2Done(t, fd, id) -> true when the session wants neither to read nor to write (close the socket)
static napi_value h2_done(napi_env env, napi_callback_info info) {
  napi_value argv[3], err, v;
  int32_t fd;
  SSL *ssl;
  h2_conn *c = h2_args(env, info, 3, argv, &fd, &ssl, NULL, &err);
  bool done = !c || (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s));
  napi_get_boolean(env, done, &v);
  return v;
}
#endif

// headNames(names: string[]) -> 0 | -EINVAL: the names a head line's code refers to (index 0 unused; lower case,
// at most SCAN_NAME_MAX - 1 bytes, at most SCAN_NAMES); given once, before heads are scanned (none are before)
static napi_value head_names(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_array_length(env, argv[0], &n) != napi_ok || n > SCAN_NAMES + 1)
    return err_value(env, EINVAL);
  scan_count = 0;
  memset(scan_len_n, 0, sizeof scan_len_n);
  for (uint32_t i = 1; i < n; i++) {
    size_t l = 0;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok ||
        napi_get_value_string_latin1(env, v, (char *)scan_names[i].s, SCAN_NAME_MAX, &l) != napi_ok ||
        l == 0 || l >= SCAN_NAME_MAX - 1 || scan_len_n[l] == SCAN_SAME_LENGTH ||
        strspn((char *)scan_names[i].s, "abcdefghijklmnopqrstuvwxyz0123456789-") != l) {
      memset(scan_len_n, 0, sizeof scan_len_n);
      return err_value(env, EINVAL);
    }
    scan_names[i].len = (uint8_t)l;
    scan_by_len[l][scan_len_n[l]++] = (uint8_t)i;
  }
  scan_bytes();
  scan_count = (int)n - 1;
  return err_value(env, 0);
}

// headScan(buf: Buffer) -> Int32Array | null: scan_head alone, for tests (the names of headNames)
static napi_value head_scan(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, out;
  void *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok)
    return err_value(env, EINVAL);
  scan_bytes();
  int32_t room[SCAN_ENTRY];
  size_t w = scan_head(data, len, room);
  if (w == 0) {
    napi_get_null(env, &out);
    return out;
  }
  void *copy;
  if (napi_create_arraybuffer(env, w * sizeof *room, &copy, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, w, ab, 0, &out) != napi_ok)
    return err_value(env, ENOMEM);
  memcpy(copy, room, w * sizeof *room);
  return out;
}

// textsMax(n) -> the limit before: the strings a round makes, at most n (0..TEXTS_MAX), for tests
static napi_value texts_max_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 0 || n > TEXTS_MAX)
    return err_value(env, EINVAL);
  napi_value v;
  napi_create_int32(env, texts_max, &v);
  texts_max = n;
  return v;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"create", create}, {"watch", watch}, {"unwatch", unwatch}, {"forget", forget}, {"writeLatin1", write_latin1}, {"peek", peek},
      {"listen", listen_fd}, {"closeFd", close_fd}, {"writeBuffer", write_buffer}, {"shutdownWrite", shutdown_write}, {"tlsContext", tls_context}, {"tlsAttach", tls_attach},
      {"tlsWrite", tls_write}, {"tlsHold", tls_hold}, {"tlsGather", tls_gather}, {"writeGather", write_gather}, {"gatherSpec", gather_spec}, {"tlsFlush", tls_flush}, {"tlsEnd", tls_end}, {"headNames", head_names}, {"headScan", head_scan},
      {"textsMax", texts_max_fn},
#ifdef KDP_H2
      {"h2Respond", h2_respond}, {"h2RespondLines", h2_respond_lines}, {"h2Lines", h2_lines},
      {"h2Data", h2_data}, {"h2Trailers", h2_trailers}, {"h2Reset", h2_reset},
      {"h2Consume", h2_consume}, {"h2Goaway", h2_goaway}, {"h2Flush", h2_flush}, {"h2State", h2_state},
      {"h2Done", h2_done},
#endif
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
