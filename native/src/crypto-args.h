// Argument checks and errors shared by the crypto exports (aead.cc,
// blake2s.cc, xaead.cc). They use plain N-API, not node-addon-api: the crypto
// calls run once per packet or handshake message and a Napi::CallbackInfo
// costs more than the work of a 16-byte MAC. Each helper throws a
// TypeError/RangeError naming the argument and returns false/nullptr.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include <openssl/err.h>
#include <openssl/evp.h>

namespace tb {

inline napi_value CryptoFail(napi_env env, bool range, const std::string& msg) {
  if (range) {
    napi_throw_range_error(env, nullptr, msg.c_str());
  } else {
    napi_throw_type_error(env, nullptr, msg.c_str());
  }
  return nullptr;
}

// An OpenSSL call that cannot fail for valid arguments did: a broken build, not bad input.
inline napi_value CryptoFailSsl(napi_env env, const char* what) {
  ERR_clear_error();
  napi_throw_error(env, "ERR_TB_OPENSSL", (std::string(what) + " failed").c_str());
  return nullptr;
}

// Exactly n arguments into argv (n <= 8) and the export's data pointer; throws a TypeError otherwise.
inline bool CryptoArgs(napi_env env, napi_callback_info info, size_t n, napi_value* argv, void** data) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, data) != napi_ok) return false;
  if (argc != n) {
    CryptoFail(env, false, "expected " + std::to_string(n) + " arguments, got " + std::to_string(argc));
    return false;
  }
  return true;
}

// argument i must be a Uint8Array; its bytes (already advanced by the view's byteOffset) and length.
inline bool CryptoBytes(napi_env env, napi_value v, size_t i, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  void* p = nullptr;
  if (napi_get_typedarray_info(env, v, &type, len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    CryptoFail(env, false, "argument " + std::to_string(i) + ": expected a Uint8Array");
    return false;
  }
  *data = static_cast<uint8_t*>(p);
  return true;
}

// exports[name] = a function calling cb with `data` (the export's per-environment state).
inline bool CryptoExport(napi_env env, napi_value exports, const char* name, napi_callback cb, void* data) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, data, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

inline napi_value CryptoBoolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

// An encrypting and a decrypting context set to OpenSSL's ChaCha20-Poly1305
// (key and nonce come per call); false when OpenSSL cannot give us the cipher.
// The caller frees both whatever the result.
inline bool NewChaChaPolyPair(EVP_CIPHER_CTX** enc, EVP_CIPHER_CTX** dec) {
  *enc = EVP_CIPHER_CTX_new();
  *dec = EVP_CIPHER_CTX_new();
  const EVP_CIPHER* cipher = EVP_chacha20_poly1305();
  return *enc != nullptr && *dec != nullptr && cipher != nullptr && EVP_EncryptInit_ex(*enc, cipher, nullptr, nullptr, nullptr) == 1 &&
         EVP_DecryptInit_ex(*dec, cipher, nullptr, nullptr, nullptr) == 1;
}

}  // namespace tb
