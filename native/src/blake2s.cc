// BLAKE2s (RFC 7693) for the handshake and its denial-of-service defences
// (whitepaper §5.4 "Cryptographic primitives"):
//
//   HASH(input)       = BLAKE2s(input, 32)            b2sHash(out32, ...parts)
//   MAC(key, input)   = Keyed-BLAKE2s(key, input, n)  b2sMac(out_n, key, input)   (mac1, mac2, cookies: n = 16)
//   HMAC(key, input)  = HMAC-BLAKE2s(key, input, 32)  b2sHmac(out32, key, ...parts)
//
// A flooded exit checks mac1 on every initiation and, under load, computes a
// cookie and a mac2 (§5.3); in JS (noble) that is ~18 µs and ~25 µs per
// message (issue 15), here one N-API call of well under a microsecond.
//
// All three are OpenSSL 3's, the OpenSSL node itself is built with (node
// exports the EVP_* and OSSL_PARAM_* symbols; see aead.cc): the digest
// `BLAKE2S-256`, the MAC `BLAKE2SMAC` (keyed BLAKE2s with the digest length as
// its `size` parameter, RFC 7693 §2.5) and the MAC `HMAC` over BLAKE2S-256
// (RFC 2104, 64-byte block). Each environment fetches them once and keeps one
// context of each; every call re-initialises the context with its key, so
// nothing is allocated per call. Results are computed into a stack buffer and
// then copied to `out`, so `out` may overlap the input.
//
// Up to kMaxParts parts are hashed as their concatenation (the Noise steps
// hash two or three pieces, e.g. HASH(H || msg.ephemeral)), without joining
// them in JS first. Misuse (wrong types, wrong output or key length, too many
// parts) throws a TypeError/RangeError before any byte is written; the wrapper
// (src/crypto/blake2s-native.ts) checks the same things first.
#include "io.h"
#include "crypto-args.h"

#include <cstring>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

namespace tb {

namespace {

constexpr size_t kHashLen = 32;    // BLAKE2s-256 and HMAC-BLAKE2s
constexpr size_t kMaxKeyLen = 32;  // RFC 7693 §2.1: BLAKE2s keys are 0..32 bytes (keyed: 1..32)
constexpr size_t kMaxParts = 4;

struct Blake2sState {
  EVP_MD* md = nullptr;
  EVP_MD_CTX* hash = nullptr;
  EVP_MAC* keyedMac = nullptr;
  EVP_MAC_CTX* keyed = nullptr;
  size_t keyedSize = 0;  // the digest length `keyed` holds (0: none set yet)
  EVP_MAC* hmacMac = nullptr;
  EVP_MAC_CTX* hmac = nullptr;
};

void FreeBlake2sState(void* arg) {
  auto* st = static_cast<Blake2sState*>(arg);
  // Freeing a MAC context cleanses the key it holds.
  EVP_MAC_CTX_free(st->hmac);
  EVP_MAC_free(st->hmacMac);
  EVP_MAC_CTX_free(st->keyed);
  EVP_MAC_free(st->keyedMac);
  EVP_MD_CTX_free(st->hash);
  EVP_MD_free(st->md);
  delete st;
}

struct Part {
  uint8_t* data;
  size_t len;
};

// Reads (out, [key,] part, part, ...) with `fixed` leading arguments (out, or out and key).
// Returns the number of parts read, or -1 after throwing.
int ReadArgs(napi_env env, napi_callback_info info, size_t fixed, size_t maxParts, Blake2sState** st, Part* out,
             Part* key, Part* parts) {
  size_t argc = 2 + kMaxParts;
  napi_value argv[2 + kMaxParts];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) return -1;
  if (argc < fixed + 1 || argc > fixed + maxParts) {
    CryptoFail(env, false, "expected " + std::to_string(fixed + 1) + ".." + std::to_string(fixed + maxParts) +
                               " arguments, got " + std::to_string(argc));
    return -1;
  }
  *st = static_cast<Blake2sState*>(data);
  if (!CryptoBytes(env, argv[0], 0, &out->data, &out->len)) return -1;
  if (fixed == 2 && !CryptoBytes(env, argv[1], 1, &key->data, &key->len)) return -1;
  for (size_t i = fixed; i < argc; i++) {
    if (!CryptoBytes(env, argv[i], i, &parts[i - fixed].data, &parts[i - fixed].len)) return -1;
  }
  return static_cast<int>(argc - fixed);
}

napi_value Undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// b2sHash(out, ...parts): out (32 bytes) = BLAKE2s-256(parts[0] || parts[1] || ...).
napi_value B2sHash(napi_env env, napi_callback_info info) {
  Blake2sState* st;
  Part out, key, parts[kMaxParts];
  int n = ReadArgs(env, info, 1, kMaxParts, &st, &out, &key, parts);
  if (n < 0) return nullptr;
  if (out.len != kHashLen) return CryptoFail(env, true, "argument 0: expected a 32-byte output, got " + std::to_string(out.len) + " bytes");
  uint8_t digest[kHashLen];
  unsigned int dl = 0;
  if (EVP_DigestInit_ex2(st->hash, st->md, nullptr) != 1) return CryptoFailSsl(env, "EVP_DigestInit_ex2");
  for (int i = 0; i < n; i++) {
    if (parts[i].len > 0 && EVP_DigestUpdate(st->hash, parts[i].data, parts[i].len) != 1) return CryptoFailSsl(env, "EVP_DigestUpdate");
  }
  if (EVP_DigestFinal_ex(st->hash, digest, &dl) != 1 || dl != kHashLen) return CryptoFailSsl(env, "EVP_DigestFinal_ex");
  std::memcpy(out.data, digest, kHashLen);
  return Undefined(env);
}

// One MAC over the parts with `ctx`, already holding its parameters; writes out.len bytes.
napi_value RunMac(napi_env env, EVP_MAC_CTX* ctx, const Part& key, const Part* parts, int n, const OSSL_PARAM* params,
                  const Part& out) {
  // A null key would make EVP_MAC_init keep the previous call's key: never pass one.
  static const uint8_t kNoKey = 0;
  const uint8_t* k = key.len > 0 ? key.data : &kNoKey;
  if (EVP_MAC_init(ctx, k, key.len, params) != 1) return CryptoFailSsl(env, "EVP_MAC_init");
  for (int i = 0; i < n; i++) {
    if (parts[i].len > 0 && EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1) return CryptoFailSsl(env, "EVP_MAC_update");
  }
  uint8_t tag[kHashLen];
  size_t tl = 0;
  if (EVP_MAC_final(ctx, tag, &tl, sizeof tag) != 1 || tl != out.len) return CryptoFailSsl(env, "EVP_MAC_final");
  std::memcpy(out.data, tag, out.len);
  OPENSSL_cleanse(tag, sizeof tag);
  return Undefined(env);
}

// b2sMac(out, key, input): out (1..32 bytes) = keyed BLAKE2s of input with digest length out.length;
// key 1..32 bytes (RFC 7693 §2.5; WireGuard's MAC is the 16-byte form).
napi_value B2sMac(napi_env env, napi_callback_info info) {
  Blake2sState* st;
  Part out, key, parts[kMaxParts];
  int n = ReadArgs(env, info, 2, 1, &st, &out, &key, parts);
  if (n < 0) return nullptr;
  if (out.len < 1 || out.len > kHashLen) return CryptoFail(env, true, "argument 0: expected a 1..32-byte output, got " + std::to_string(out.len) + " bytes");
  if (key.len < 1 || key.len > kMaxKeyLen) return CryptoFail(env, true, "argument 1: expected a 1..32-byte key, got " + std::to_string(key.len) + " bytes");
  // The context keeps its digest length across inits; parsing the parameter
  // costs about as much as the MAC of a handshake message, so it is only
  // passed when the length changes (WireGuard always asks for 16).
  size_t size = out.len;
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  bool same = st->keyedSize == size;
  st->keyedSize = 0;  // unknown until this init succeeds
  napi_value r = RunMac(env, st->keyed, key, parts, n, same ? nullptr : params, out);
  if (r != nullptr) st->keyedSize = size;
  return r;
}

// b2sHmac(out, key, ...parts): out (32 bytes) = HMAC-BLAKE2s(key, parts[0] || ...); any key length.
napi_value B2sHmac(napi_env env, napi_callback_info info) {
  Blake2sState* st;
  Part out, key, parts[kMaxParts];
  int n = ReadArgs(env, info, 2, kMaxParts, &st, &out, &key, parts);
  if (n < 0) return nullptr;
  if (out.len != kHashLen) return CryptoFail(env, true, "argument 0: expected a 32-byte output, got " + std::to_string(out.len) + " bytes");
  return RunMac(env, st->hmac, key, parts, n, nullptr, out);
}

}  // namespace

// Adds b2sHash/b2sMac/b2sHmac to the exports; left out when this OpenSSL
// lacks BLAKE2s (the wrapper then reports the backend unavailable).
void InitBlake2s(Napi::Env env, Napi::Object exports) {
  auto* st = new Blake2sState();
  st->md = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
  st->hash = EVP_MD_CTX_new();
  st->keyedMac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
  st->keyed = st->keyedMac != nullptr ? EVP_MAC_CTX_new(st->keyedMac) : nullptr;
  st->hmacMac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  st->hmac = st->hmacMac != nullptr ? EVP_MAC_CTX_new(st->hmacMac) : nullptr;
  char digest[] = "BLAKE2S-256";
  OSSL_PARAM hp[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  bool ok = st->md != nullptr && st->hash != nullptr && st->keyed != nullptr && st->hmac != nullptr &&
            EVP_MD_get_size(st->md) == static_cast<int>(kHashLen) && EVP_MAC_CTX_set_params(st->hmac, hp) == 1;
  if (!ok || napi_add_env_cleanup_hook(env, FreeBlake2sState, st) != napi_ok) {
    ERR_clear_error();
    FreeBlake2sState(st);
    return;
  }
  napi_value e = exports;
  if (!CryptoExport(env, e, "b2sHash", B2sHash, st) || !CryptoExport(env, e, "b2sMac", B2sMac, st)) return;
  CryptoExport(env, e, "b2sHmac", B2sHmac, st);
}

}  // namespace tb
