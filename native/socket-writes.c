/*
 * One call that writes many sockets: the realtime hub's flush hands a slice of its write queue
 * (file descriptors and the bytes for each) to writeMany, which sends each with one
 * non-blocking send(2) and reports what each took. A JavaScript socket write costs ~1 µs on
 * top of the syscall (the call into Node, its stream and libuv layers): a millisecond per pass
 * over 1,000 subscribers, half of which a change waits on average (docs/realtime.md, "Native
 * socket writes").
 *
 * Node-API only (ABI-stable across Node versions); no state, no threads, no allocation. The
 * caller keeps every rule: it passes only sockets with nothing queued in Node, and writes what
 * a send did not take (partly written, EAGAIN, an error) through the socket as before.
 *
 * yieldCpu() is sched_yield(2), for the hub's flush: a pass over 1,000 subscribers keeps its
 * thread busy for milliseconds, and between its slices it lets other runnable threads on the
 * core go first (Postgres's walsender and committing backends, on a shared host), instead of
 * leaving them to wait for the scheduler to preempt it. Linux's fair scheduler does not take
 * the caller's share of the CPU for it (EEVDF moves its deadline back by a slice; CFS before
 * 6.6 skipped it once), and with nothing else runnable the call returns at once.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <sched.h>
#include <sys/socket.h>

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* writeMany(fds: Int32Array, bufs: Uint8Array[], count: number, out: Int32Array): void
 * out[i] = bytes sent (0..len) or -errno. */
static napi_value write_many(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return throw_type(env, "writeMany(fds, bufs, count, out)");
  napi_typedarray_type type;
  size_t nfds, nout;
  void *fds_data, *out_data;
  if (napi_get_typedarray_info(env, argv[0], &type, &nfds, &fds_data, NULL, NULL) != napi_ok || type != napi_int32_array) return throw_type(env, "fds must be an Int32Array");
  if (napi_get_typedarray_info(env, argv[3], &type, &nout, &out_data, NULL, NULL) != napi_ok || type != napi_int32_array) return throw_type(env, "out must be an Int32Array");
  bool is_array;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return throw_type(env, "bufs must be an array");
  uint32_t nbufs;
  napi_get_array_length(env, argv[1], &nbufs);
  double count_d;
  if (napi_get_value_double(env, argv[2], &count_d) != napi_ok) return throw_type(env, "count must be a number");
  size_t count = count_d < 0 ? 0 : (size_t)count_d;
  if (count > nfds || count > nout || count > nbufs) return throw_type(env, "count exceeds an array");
  const int32_t *fds = fds_data;
  int32_t *out = out_data;
  for (size_t i = 0; i < count; i++) {
    napi_value b;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[1], (uint32_t)i, &b) != napi_ok || napi_get_typedarray_info(env, b, &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
      /* Not sent: the caller writes it through the socket. */
      out[i] = -EINVAL;
      continue;
    }
    if (len > INT32_MAX) len = INT32_MAX;
    ssize_t r;
    do r = send(fds[i], data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    out[i] = r < 0 ? -errno : (int32_t)r;
  }
  return NULL;
}

/* yieldCpu(): void */
static napi_value yield_cpu(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  sched_yield();
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "writeMany", NAPI_AUTO_LENGTH, write_many, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeMany", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "yieldCpu", NAPI_AUTO_LENGTH, yield_cpu, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "yieldCpu", fn) != napi_ok) return NULL;
  return exports;
}
