// Uniform argument checks. Each helper throws a TypeError or RangeError naming
// the argument and returns false; callers return immediately.
#include "io.h"

#include <string>

namespace tb {

namespace {

bool Fail(Napi::Env env, bool range, size_t i, const std::string& what) {
  std::string msg = "argument " + std::to_string(i) + ": " + what;
  if (range) {
    Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  } else {
    Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  }
  return false;
}

}  // namespace

bool ArgCount(const Napi::CallbackInfo& info, size_t n) {
  if (info.Length() == n) return true;
  Napi::TypeError::New(info.Env(), "expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()))
      .ThrowAsJavaScriptException();
  return false;
}

bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t min, int64_t max, int64_t* out) {
  if (!info[i].IsNumber()) return Fail(info.Env(), false, i, "expected an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || d != static_cast<double>(static_cast<int64_t>(d))) {
    return Fail(info.Env(), true, i, "expected an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, bool* out) {
  if (!info[i].IsBoolean()) return Fail(info.Env(), false, i, "expected a boolean");
  *out = info[i].As<Napi::Boolean>().Value();
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (!info[i].IsString()) return Fail(info.Env(), false, i, "expected a string");
  *out = info[i].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) return Fail(info.Env(), false, i, "string contains NUL");
  return true;
}

bool ArgBytes(const Napi::CallbackInfo& info, size_t i, bool allowNull, uint8_t** data, size_t* len) {
  if (allowNull && info[i].IsNull()) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return Fail(info.Env(), false, i, allowNull ? "expected a Uint8Array or null" : "expected a Uint8Array");
  }
  auto a = info[i].As<Napi::Uint8Array>();
  *data = a.Data();
  *len = a.ElementLength();
  return true;
}

bool ArgInt32s(const Napi::CallbackInfo& info, size_t i, int32_t** data, size_t* len) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    return Fail(info.Env(), false, i, "expected an Int32Array");
  }
  auto a = info[i].As<Napi::Int32Array>();
  *data = a.Data();
  *len = a.ElementLength();
  return true;
}

Handle* ArgHandle(const Napi::CallbackInfo& info, size_t i, bool udp) {
  Napi::Env env = info.Env();
  if (!info[i].IsObject()) {
    Fail(env, false, i, "expected a Handle");
    return nullptr;
  }
  Napi::Object obj = info[i].As<Napi::Object>();
  bool isHandle = false;
  napi_value ctor = Handle::Constructor(env);
  if (ctor == nullptr || napi_instanceof(env, obj, ctor, &isHandle) != napi_ok || !isHandle) {
    Fail(env, false, i, "expected a Handle");
    return nullptr;
  }
  Handle* h = Handle::Unwrap(obj);
  if (h == nullptr) {
    Fail(env, false, i, "expected a Handle");
    return nullptr;
  }
  bool kindOk = udp ? (h->kind() == Handle::kUdp4 || h->kind() == Handle::kUdp6) : h->kind() == Handle::kTun;
  if (!kindOk) {
    Fail(env, false, i, udp ? "expected a UDP handle" : "expected a TUN handle");
    return nullptr;
  }
  if (h->fd() < 0) {
    Napi::Error e = Napi::Error::New(env, "handle is closed");
    e.Set("code", Napi::String::New(env, "ERR_HANDLE_CLOSED"));
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
  return h;
}

// (handle, data, offsets, lengths, endpoints|null, slotSize, count, headroom, res)
bool ArgBatch(const Napi::CallbackInfo& info, bool udp, bool wantEndpoints, BatchArgs* out) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 9)) return false;
  out->handle = ArgHandle(info, 0, udp);
  if (out->handle == nullptr) return false;
  size_t dataLen, offLen, lenLen, epLen, resLen;
  int64_t slotSize, count, headroom;
  if (!ArgBytes(info, 1, false, &out->data, &dataLen) || !ArgInt32s(info, 2, &out->offsets, &offLen) ||
      !ArgInt32s(info, 3, &out->lengths, &lenLen) || !ArgBytes(info, 4, !wantEndpoints, &out->endpoints, &epLen) ||
      !ArgInt(info, 5, 1, INT32_MAX, &slotSize) || !ArgInt(info, 6, 0, 65536, &count) ||
      !ArgInt(info, 7, 0, slotSize - 1, &headroom) || !ArgInt32s(info, 8, &out->res, &resLen)) {
    return false;
  }
  out->slotSize = static_cast<size_t>(slotSize);
  out->count = static_cast<size_t>(count);
  out->headroom = static_cast<size_t>(headroom);
  out->resLen = resLen;
  if (out->count > offLen || out->count > lenLen) return Fail(env, true, 6, "count exceeds offsets/lengths");
  if (out->count > dataLen / out->slotSize) return Fail(env, true, 6, "count * slotSize exceeds data");
  if (wantEndpoints && out->count > epLen / kEndpointSize) return Fail(env, true, 6, "count exceeds endpoints");
  if (resLen < kResSize) return Fail(env, true, 8, "expected an Int32Array of at least 4 elements");
  for (size_t k = 0; k < kResSize; k++) out->res[k] = 0;
  return true;
}

bool CheckPackets(Napi::Env env, const BatchArgs& b) {
  for (size_t i = 0; i < b.count; i++) {
    int64_t off = b.offsets[i], len = b.lengths[i];
    if (off < 0 || len < 0 || off + len > static_cast<int64_t>(b.slotSize)) {
      Napi::RangeError::New(env, "packet " + std::to_string(i) + ": offset " + std::to_string(off) + " + length " +
                                     std::to_string(len) + " outside its slot of " + std::to_string(b.slotSize))
          .ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

}  // namespace tb
