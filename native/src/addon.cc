// Module entry, per-environment state and the polled Handle.
//
// Readiness is delivered by uv_poll on the Node event loop: one JS call per
// wakeup, in which the wrapper drains the fd in batches with tunRead/udpRecv.
// No thread pool, no per-packet callbacks.
#include "io.h"

#include <cerrno>
#include <cstring>
#include <set>

#include <linux/if_tun.h>
#include <net/if.h>
#include <unistd.h>

namespace tb {

// Per-environment (main thread or worker) state: the Handle constructor and
// every open Handle, so that teardown can close what JS left open.
struct EnvState {
  Napi::FunctionReference ctor;
  std::set<Handle*> open;
  int closing = 0;  // uv_close callbacks still to come
  napi_async_cleanup_hook_handle hook = nullptr;
  bool tearingDown = false;
};

namespace {

void MaybeFinishTeardown(EnvState* st) {
  if (st->tearingDown && st->closing == 0 && st->hook != nullptr) {
    napi_async_cleanup_hook_handle h = st->hook;
    st->hook = nullptr;
    napi_remove_async_cleanup_hook(h);
  }
}

struct PollCloseCtx {
  EnvState* state;
};

void OnPollClosed(uv_handle_t* h) {
  auto* ctx = static_cast<PollCloseCtx*>(h->data);
  EnvState* st = ctx->state;
  delete ctx;
  delete reinterpret_cast<uv_poll_t*>(h);
  st->closing--;
  MaybeFinishTeardown(st);
}

// Environment teardown: close every Handle JS left open, then tell Node once
// the last uv_close callback has run (so the loop can be closed cleanly).
void OnTeardown(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* st = static_cast<EnvState*>(arg);
  st->hook = hook;
  st->tearingDown = true;
  std::set<Handle*> open = st->open;
  for (Handle* h : open) h->CloseNow();
  MaybeFinishTeardown(st);
}

void DeleteState(napi_env, void* data, void*) { delete static_cast<EnvState*>(data); }

}  // namespace

// ---- Handle

Napi::Function Handle::DefineClass(Napi::Env env) {
  return ObjectWrap<Handle>::DefineClass(env, "Handle",
                                         {
                                             InstanceMethod<&Handle::Poll>("poll"),
                                             InstanceMethod<&Handle::Pause>("pause"),
                                             InstanceMethod<&Handle::Close>("close"),
                                             InstanceMethod<&Handle::LoopRef>("ref"),
                                             InstanceMethod<&Handle::LoopUnref>("unref"),
                                             InstanceAccessor<&Handle::GetFd>("fd"),
                                         });
}

Napi::Object Handle::New(Napi::Env env, int fd, Kind kind) {
  auto* st = env.GetInstanceData<EnvState>();
  Napi::Object obj = st->ctor.New({Napi::Number::New(env, fd), Napi::Number::New(env, kind)});
  if (obj.IsEmpty()) close(fd);  // construction threw: do not leak the fd
  return obj;
}

napi_value Handle::Constructor(Napi::Env env) {
  auto* st = env.GetInstanceData<EnvState>();
  if (st == nullptr) return nullptr;
  return st->ctor.Value();
}

// new Handle(fd, kind) — only reachable through Handle::New (the class is not exported).
Handle::Handle(const Napi::CallbackInfo& info) : ObjectWrap<Handle>(info) {
  int64_t fd, kind;
  if (!ArgCount(info, 2) || !ArgInt(info, 0, 0, INT32_MAX, &fd) || !ArgInt(info, 1, kTun, kUdp6, &kind)) return;
  state_ = info.Env().GetInstanceData<EnvState>();
  env_ = info.Env();
  fd_ = static_cast<int>(fd);
  kind_ = static_cast<Kind>(kind);
  state_->open.insert(this);
}

Handle::~Handle() { CloseNow(); }

void Handle::CloseNow() {
  if (fd_ < 0) return;
  StopPolling();
  if (poll_ != nullptr) {
    poll_->data = new PollCloseCtx{state_};
    state_->closing++;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), OnPollClosed);
    poll_ = nullptr;
  }
  // Safe right after uv_poll_stop/uv_close (libuv docs, uv_poll_t).
  close(fd_);
  fd_ = -1;
  if (async_ != nullptr) {
    napi_async_destroy(env_, async_);
    async_ = nullptr;
  }
  state_->open.erase(this);
}

void Handle::StopPolling() {
  if (polling_) {
    uv_poll_stop(poll_);
    polling_ = false;
  }
  if (!cb_.IsEmpty()) cb_.Reset();
  if (pinned_) {
    pinned_ = false;
    ObjectWrap<Handle>::Unref();
  }
}

// poll(cb): calls cb(status) on every wakeup in which the fd is readable
// (status 0) or reports an error (status < 0, a libuv error code; libuv has
// then stopped polling — call poll again to resume). Replaces an earlier cb.
Napi::Value Handle::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "argument 0: expected a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (fd_ < 0) {
    Napi::Error::New(env, "handle is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return env.Undefined();
  if (poll_ == nullptr) {
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      return ThrowErrno(env, -r, "uv_poll_init");
    }
    if (!ref_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }
  if (async_ == nullptr) {
    napi_value name = Napi::String::New(env, kind_ == kTun ? "tunnelbyte:tun" : "tunnelbyte:udp");
    if (napi_async_init(env, Value(), name, &async_) != napi_ok) return env.Undefined();
  }
  cb_.Reset(info[0].As<Napi::Function>(), 1);
  if (!pinned_) {
    // A handle being polled must not be collected (and closed) under its callback.
    pinned_ = true;
    ObjectWrap<Handle>::Ref();
  }
  poll_->data = this;
  int r = uv_poll_start(poll_, UV_READABLE, OnPoll);
  if (r != 0) return ThrowErrno(env, -r, "uv_poll_start");
  polling_ = true;
  return env.Undefined();
}

void Handle::OnPoll(uv_poll_t* poll, int status, int /*events*/) {
  auto* self = static_cast<Handle*>(poll->data);
  if (self == nullptr || self->cb_.IsEmpty()) return;
  if (status < 0) self->polling_ = false;  // libuv stopped the watcher
  Napi::Env env(self->env_);
  Napi::HandleScope scope(env);
  // Keep the callback alive across the call even if JS closes the handle in it.
  Napi::Function cb = self->cb_.Value();
  napi_value argv[1] = {Napi::Number::New(env, status)};
  napi_value result;
  napi_status s = napi_make_callback(env, self->async_, self->Value(), cb, 1, argv, &result);
  if (s != napi_ok) {
    // The callback threw: report it like an exception in any event handler.
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
}

Napi::Value Handle::Pause(const Napi::CallbackInfo& info) {
  StopPolling();
  return info.Env().Undefined();
}

Napi::Value Handle::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

Napi::Value Handle::LoopRef(const Napi::CallbackInfo& info) {
  ref_ = true;
  if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

Napi::Value Handle::LoopUnref(const Napi::CallbackInfo& info) {
  ref_ = false;
  if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  return info.Env().Undefined();
}

// fd: the descriptor, or -1 once closed (diagnostics only).
Napi::Value Handle::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall) {
  const char* code = uv_err_name(uv_translate_sys_error(err));
  std::string msg = std::string(code) + ": " + strerror(err) + ", " + syscall;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* st = new EnvState();
  if (napi_set_instance_data(env, st, DeleteState, nullptr) != napi_ok) {
    delete st;
    return exports;
  }
  Napi::Function ctor = Handle::DefineClass(env);
  st->ctor = Napi::Persistent(ctor);
  napi_add_async_cleanup_hook(env, OnTeardown, st, nullptr);

  // Values the wrapper needs, so TypeScript never hard-codes them.
  Napi::Object c = Napi::Object::New(env);
  c.Set("IFF_TUN", IFF_TUN);
  c.Set("IFF_NO_PI", IFF_NO_PI);
  c.Set("IFF_TUN_EXCL", IFF_TUN_EXCL);
  c.Set("IFF_VNET_HDR", IFF_VNET_HDR);
  c.Set("IFNAMSIZ", IFNAMSIZ);
  c.Set("EAGAIN", EAGAIN);
  c.Set("EINTR", EINTR);
  c.Set("EINVAL", EINVAL);
  c.Set("EIO", EIO);
  c.Set("EBADFD", EBADFD);
  c.Set("ENOBUFS", ENOBUFS);
  c.Set("EAFNOSUPPORT", EAFNOSUPPORT);
  c.Set("EADDRNOTAVAIL", EADDRNOTAVAIL);
  c.Set("ENODEV", ENODEV);
  c.Set("ENOTTY", ENOTTY);
  c.Set("EOPNOTSUPP", EOPNOTSUPP);
  c.Set("EACCES", EACCES);
  c.Set("EPERM", EPERM);
  exports.Set("constants", c);

  InitTun(env, exports);
  InitUdp(env, exports);
  InitPing(env, exports);
  InitAead(env, exports);
  InitBlake2s(env, exports);
  InitXaead(env, exports);
#ifdef TB_TEST_EXPORTS
  InitTestExports(env, exports);
#endif
  return exports;
}

}  // namespace
}  // namespace tb

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tb::Init(env, exports); }

NODE_API_MODULE(tunnelbyte_io, InitModule)
