// ChaCha20-Poly1305 (RFC 8439 §2.8) for the transport data path: one packet
// sealed or opened in place inside the caller's buffer (whitepaper §5.4.6:
// nonce = 32 zero bits || LE64(counter), empty associated data, 16-byte tag
// right after the ciphertext). The wrapper is src/crypto/aead-native.ts.
//
// The cipher is OpenSSL's EVP_chacha20_poly1305 — the OpenSSL node itself is
// built with. The node binary exports its EVP_* symbols; this addon links no
// libcrypto, they stay undefined in the .node file and the dynamic loader
// binds them to node's when the addon is loaded. Headers: node's own
// (/usr/include/node/openssl), so they match the library.
//
// Nothing here allocates per call: each environment keeps one encrypting and
// one decrypting EVP_CIPHER_CTX (key and nonce are set on every call) and a
// scratch buffer that only grows; arguments are read with plain N-API calls,
// the counter as a double. Seal/open return undefined/a boolean (singletons).
//
// open() decrypts into the scratch buffer and copies the plaintext over the
// ciphertext only once the tag has verified, so a packet that fails leaves
// the caller's bytes untouched (and its would-be plaintext is wiped from the
// scratch). The copy costs ~30 ns per 1420-byte packet.
//
// Misuse — wrong types, a key that is not 32 bytes, a region outside the
// buffer, a counter that is not an integer in [0, 2^64) — throws a
// TypeError/RangeError before any byte is touched. The wrapper checks the
// same bounds first; these checks are the ones memory safety rests on.
#include "io.h"
#include "crypto-args.h"

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace tb {

namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kTagLen = 16;
constexpr size_t kNonceLen = 12;
constexpr size_t kScratchInitial = 65536;  // the largest UDP payload; grows if ever exceeded
constexpr double kTwoTo64 = 18446744073709551616.0;

// Per-environment state (main thread or worker), freed by an env cleanup hook.
struct AeadState {
  EVP_CIPHER_CTX* enc = nullptr;
  EVP_CIPHER_CTX* dec = nullptr;
  std::vector<uint8_t> scratch;
};

void FreeAeadState(void* arg) {
  auto* st = static_cast<AeadState*>(arg);
  // Freeing a context cleanses its key schedule.
  EVP_CIPHER_CTX_free(st->enc);
  EVP_CIPHER_CTX_free(st->dec);
  if (!st->scratch.empty()) OPENSSL_cleanse(st->scratch.data(), st->scratch.size());
  delete st;
}

std::string Num(double d) {
  char s[32];
  snprintf(s, sizeof s, "%.17g", d);
  return s;
}

struct Call {
  AeadState* st;
  const uint8_t* key;
  uint8_t nonce[kNonceLen];
  uint8_t* buf;  // the region's first byte
  size_t len;    // the region's length (open: including the tag)
};

bool Number(napi_env env, napi_value v, size_t i, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    CryptoFail(env, false, "argument " + std::to_string(i) + ": expected a number");
    return false;
  }
  return true;
}

// (key, counter, buf, at, len): checks everything and fills `c`. `extra` is
// the room needed after buf[at, at+len): the tag when sealing, 0 when opening.
bool ReadCall(napi_env env, napi_callback_info info, size_t extra, Call* c) {
  napi_value argv[5];
  void* data = nullptr;
  if (!CryptoArgs(env, info, 5, argv, &data)) return false;
  c->st = static_cast<AeadState*>(data);
  uint8_t* key;
  size_t keyLen, bufLen;
  double counter, at, len;
  if (!CryptoBytes(env, argv[0], 0, &key, &keyLen) || !Number(env, argv[1], 1, &counter) ||
      !CryptoBytes(env, argv[2], 2, &c->buf, &bufLen) || !Number(env, argv[3], 3, &at) || !Number(env, argv[4], 4, &len)) {
    return false;
  }
  if (keyLen != kKeyLen) {
    CryptoFail(env, true, "argument 0: expected a 32-byte key, got " + std::to_string(keyLen) + " bytes");
    return false;
  }
  if (!(counter >= 0 && counter < kTwoTo64) || std::trunc(counter) != counter) {
    CryptoFail(env, true, "argument 1: expected an integer counter in [0, 2^64)");
    return false;
  }
  // at and len: integers with at + len + extra <= buf.length and len <= INT_MAX (EVP lengths are ints).
  if (!(at >= 0 && len >= 0 && len <= INT_MAX && at <= static_cast<double>(bufLen)) || std::trunc(at) != at ||
      std::trunc(len) != len || static_cast<size_t>(len) + extra > bufLen - static_cast<size_t>(at)) {
    CryptoFail(env, true, "region at " + Num(at) + " of length " + Num(len) + (extra ? " plus a tag" : "") +
                        " is outside a buffer of " + std::to_string(bufLen) + " bytes");
    return false;
  }
  c->key = key;
  c->buf += static_cast<size_t>(at);
  c->len = static_cast<size_t>(len);
  // whitepaper §5.4.6: 32 bits of zeros, then the 64-bit little-endian counter.
  uint64_t n = static_cast<uint64_t>(counter);
  std::memset(c->nonce, 0, 4);
  for (size_t k = 0; k < 8; k++) c->nonce[4 + k] = static_cast<uint8_t>(n >> (8 * k));
  return true;
}

// aeadSeal(key, counter, buf, at, len): encrypts buf[at, at+len) in place and
// writes the tag at buf[at+len, at+len+16).
napi_value AeadSeal(napi_env env, napi_callback_info info) {
  Call c;
  if (!ReadCall(env, info, kTagLen, &c)) return nullptr;
  EVP_CIPHER_CTX* ctx = c.st->enc;
  int outl = 0;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, c.key, c.nonce) != 1) return CryptoFailSsl(env, "EVP_EncryptInit_ex");
  // §2.8: the plaintext is XORed with the keystream from block 1 on; exact overlap (in == out) is allowed.
  if (c.len > 0 && EVP_EncryptUpdate(ctx, c.buf, &outl, c.buf, static_cast<int>(c.len)) != 1) {
    return CryptoFailSsl(env, "EVP_EncryptUpdate");
  }
  if (EVP_EncryptFinal_ex(ctx, c.buf + c.len, &outl) != 1) return CryptoFailSsl(env, "EVP_EncryptFinal_ex");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, c.buf + c.len) != 1) {
    return CryptoFailSsl(env, "EVP_CTRL_AEAD_GET_TAG");
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

// aeadOpen(key, counter, buf, at, len): len includes the tag. Verifies the tag
// over buf[at, at+len-16) and only then writes the plaintext there; returns
// whether it verified (false also for len < 16).
napi_value AeadOpen(napi_env env, napi_callback_info info) {
  Call c;
  if (!ReadCall(env, info, 0, &c)) return nullptr;
  bool ok = false;
  if (c.len >= kTagLen) {
    size_t clen = c.len - kTagLen;
    std::vector<uint8_t>& scratch = c.st->scratch;
    if (scratch.size() < clen) scratch.resize(clen);  // never on the steady path: starts at 64 KiB
    EVP_CIPHER_CTX* ctx = c.st->dec;
    int outl = 0;
    if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, c.key, c.nonce) != 1) return CryptoFailSsl(env, "EVP_DecryptInit_ex");
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, c.buf + clen) != 1) {
      return CryptoFailSsl(env, "EVP_CTRL_AEAD_SET_TAG");
    }
    if (clen > 0 && EVP_DecryptUpdate(ctx, scratch.data(), &outl, c.buf, static_cast<int>(clen)) != 1) {
      return CryptoFailSsl(env, "EVP_DecryptUpdate");
    }
    // §2.8: the tag is compared in constant time by OpenSSL (CRYPTO_memcmp).
    ok = EVP_DecryptFinal_ex(ctx, scratch.data() + clen, &outl) == 1;
    if (ok) {
      std::memcpy(c.buf, scratch.data(), clen);
    } else {
      ERR_clear_error();
      if (clen > 0) OPENSSL_cleanse(scratch.data(), clen);
    }
  }
  return CryptoBoolean(env, ok);
}

}  // namespace

// Adds aeadSeal/aeadOpen to the exports. When OpenSSL cannot give us the
// cipher they are left out, and the wrapper reports the backend unavailable.
void InitAead(Napi::Env env, Napi::Object exports) {
  auto* st = new AeadState();
  bool ok = NewChaChaPolyPair(&st->enc, &st->dec) && EVP_CIPHER_CTX_get_iv_length(st->enc) == static_cast<int>(kNonceLen) &&
            EVP_CIPHER_CTX_get_key_length(st->enc) == static_cast<int>(kKeyLen);
  if (ok) st->scratch.resize(kScratchInitial);
  if (!ok || napi_add_env_cleanup_hook(env, FreeAeadState, st) != napi_ok) {
    ERR_clear_error();
    FreeAeadState(st);
    return;
  }
  if (!CryptoExport(env, exports, "aeadSeal", AeadSeal, st)) return;
  CryptoExport(env, exports, "aeadOpen", AeadOpen, st);
}

}  // namespace tb
