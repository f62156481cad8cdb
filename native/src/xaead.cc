// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2) for the cookie in a
// cookie reply (whitepaper §5.4.7): a 24-byte random nonce, the mac1 of the
// message being answered as associated data, a 16-byte cookie.
//
//   subkey = HChaCha20(key, nonce[0:16])                       (§2.2)
//   XAEAD  = ChaCha20-Poly1305(subkey, 0^32 || nonce[16:24])   (§2.3, RFC 8439 §2.8)
//
// OpenSSL 3.0 has no XChaCha, so HChaCha20 — twenty ChaCha rounds over the
// key and the first 16 nonce bytes, whose first and last rows are the subkey
// (no feed-forward addition) — is written out below from the draft; the AEAD
// is OpenSSL's EVP_chacha20_poly1305, as in aead.cc. An exit under a flood
// seals one of these per initiation it cannot accept (§5.3); in JS that was
// ~36 µs (issue 15).
//
//   xaeadSeal(key, nonce, aad, input, out)   out = ciphertext || tag (input.length + 16 bytes)
//   xaeadOpen(key, nonce, aad, input, out)   out = plaintext (input.length - 16 bytes);
//                                            false, with out zeroed, when the tag fails
//
// The subkey lives on the stack and is cleansed after every call. Misuse
// throws a TypeError/RangeError before anything is written; the wrapper
// (src/crypto/xaead-native.ts) checks the same lengths first.
#include "io.h"
#include "crypto-args.h"

#include <climits>
#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace tb {

namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kXNonceLen = 24;
constexpr size_t kTagLen = 16;

struct XaeadState {
  EVP_CIPHER_CTX* enc = nullptr;
  EVP_CIPHER_CTX* dec = nullptr;
};

void FreeXaeadState(void* arg) {
  auto* st = static_cast<XaeadState*>(arg);
  EVP_CIPHER_CTX_free(st->enc);
  EVP_CIPHER_CTX_free(st->dec);
  delete st;
}

inline uint32_t Rotl(uint32_t v, int c) { return (v << c) | (v >> (32 - c)); }
inline uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
inline void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// RFC 8439 §2.1: the quarter round.
#define TB_QR(a, b, c, d)  \
  a += b, d ^= a, d = Rotl(d, 16); \
  c += d, b ^= c, b = Rotl(b, 12); \
  a += b, d ^= a, d = Rotl(d, 8);  \
  c += d, b ^= c, b = Rotl(b, 7)

// draft-irtf-cfrg-xchacha-03 §2.2: the ChaCha20 state with the 16-byte nonce
// in place of counter and nonce, 10 double rounds, then words 0..3 and 12..15.
void HChaCha20(const uint8_t key[kKeyLen], const uint8_t nonce16[16], uint8_t out[kKeyLen]) {
  uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  // "expand 32-byte k"
  for (int i = 0; i < 8; i++) x[4 + i] = Le32(key + 4 * i);
  for (int i = 0; i < 4; i++) x[12 + i] = Le32(nonce16 + 4 * i);
  for (int r = 0; r < 10; r++) {
    TB_QR(x[0], x[4], x[8], x[12]);  // column rounds
    TB_QR(x[1], x[5], x[9], x[13]);
    TB_QR(x[2], x[6], x[10], x[14]);
    TB_QR(x[3], x[7], x[11], x[15]);
    TB_QR(x[0], x[5], x[10], x[15]);  // diagonal rounds
    TB_QR(x[1], x[6], x[11], x[12]);
    TB_QR(x[2], x[7], x[8], x[13]);
    TB_QR(x[3], x[4], x[9], x[14]);
  }
  for (int i = 0; i < 4; i++) PutLe32(out + 4 * i, x[i]);
  for (int i = 0; i < 4; i++) PutLe32(out + 16 + 4 * i, x[12 + i]);
  OPENSSL_cleanse(x, sizeof x);
}

#undef TB_QR

struct XCall {
  XaeadState* st;
  uint8_t *key, *nonce, *aad, *in, *out;
  size_t keyLen, nonceLen, aadLen, inLen, outLen;
};

// (key, nonce, aad, input, out); `sealing` decides how out's length must relate to input's.
bool ReadXCall(napi_env env, napi_callback_info info, bool sealing, XCall* c) {
  napi_value argv[5];
  void* data = nullptr;
  if (!CryptoArgs(env, info, 5, argv, &data)) return false;
  c->st = static_cast<XaeadState*>(data);
  if (!CryptoBytes(env, argv[0], 0, &c->key, &c->keyLen) || !CryptoBytes(env, argv[1], 1, &c->nonce, &c->nonceLen) ||
      !CryptoBytes(env, argv[2], 2, &c->aad, &c->aadLen) || !CryptoBytes(env, argv[3], 3, &c->in, &c->inLen) ||
      !CryptoBytes(env, argv[4], 4, &c->out, &c->outLen)) {
    return false;
  }
  if (c->keyLen != kKeyLen) {
    CryptoFail(env, true, "argument 0: expected a 32-byte key, got " + std::to_string(c->keyLen) + " bytes");
    return false;
  }
  if (c->nonceLen != kXNonceLen) {
    CryptoFail(env, true, "argument 1: expected a 24-byte nonce, got " + std::to_string(c->nonceLen) + " bytes");
    return false;
  }
  if (c->aadLen > INT_MAX || c->inLen > INT_MAX - kTagLen) {
    CryptoFail(env, true, "input too long");
    return false;
  }
  bool lenOk = sealing ? c->outLen == c->inLen + kTagLen : c->inLen >= kTagLen && c->outLen == c->inLen - kTagLen;
  if (!lenOk) {
    CryptoFail(env, true, std::string("argument 4: expected an output of ") + (sealing ? "input + 16" : "input - 16") +
                              " bytes, got " + std::to_string(c->outLen) + " for an input of " + std::to_string(c->inLen));
    return false;
  }
  return true;
}

// §2.3: the ChaCha20-Poly1305 nonce is four zero bytes and the last 8 bytes of the 24-byte nonce.
void InnerNonce(const uint8_t* xnonce, uint8_t n[12]) {
  std::memset(n, 0, 4);
  std::memcpy(n + 4, xnonce + 16, 8);
}

napi_value XaeadSeal(napi_env env, napi_callback_info info) {
  XCall c;
  if (!ReadXCall(env, info, true, &c)) return nullptr;
  uint8_t subkey[kKeyLen], n[12];
  HChaCha20(c.key, c.nonce, subkey);
  InnerNonce(c.nonce, n);
  EVP_CIPHER_CTX* ctx = c.st->enc;
  int outl = 0;
  bool ok = EVP_EncryptInit_ex(ctx, nullptr, nullptr, subkey, n) == 1 &&
            (c.aadLen == 0 || EVP_EncryptUpdate(ctx, nullptr, &outl, c.aad, static_cast<int>(c.aadLen)) == 1) &&
            (c.inLen == 0 || EVP_EncryptUpdate(ctx, c.out, &outl, c.in, static_cast<int>(c.inLen)) == 1) &&
            EVP_EncryptFinal_ex(ctx, c.out + c.inLen, &outl) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, c.out + c.inLen) == 1;
  OPENSSL_cleanse(subkey, sizeof subkey);
  if (!ok) return CryptoFailSsl(env, "XChaCha20-Poly1305 seal");
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value XaeadOpen(napi_env env, napi_callback_info info) {
  XCall c;
  if (!ReadXCall(env, info, false, &c)) return nullptr;
  uint8_t subkey[kKeyLen], n[12];
  HChaCha20(c.key, c.nonce, subkey);
  InnerNonce(c.nonce, n);
  size_t clen = c.inLen - kTagLen;
  // The tag is copied first: `out` may overlap `in`.
  uint8_t tag[kTagLen];
  std::memcpy(tag, c.in + clen, kTagLen);
  EVP_CIPHER_CTX* ctx = c.st->dec;
  int outl = 0;
  bool setup = EVP_DecryptInit_ex(ctx, nullptr, nullptr, subkey, n) == 1 &&
               EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) == 1 &&
               (c.aadLen == 0 || EVP_DecryptUpdate(ctx, nullptr, &outl, c.aad, static_cast<int>(c.aadLen)) == 1) &&
               (clen == 0 || EVP_DecryptUpdate(ctx, c.out, &outl, c.in, static_cast<int>(clen)) == 1);
  OPENSSL_cleanse(subkey, sizeof subkey);
  if (!setup) return CryptoFailSsl(env, "XChaCha20-Poly1305 open");
  // RFC 8439 §2.8: the tag is compared in constant time by OpenSSL.
  bool ok = EVP_DecryptFinal_ex(ctx, c.out + clen, &outl) == 1;
  if (!ok) {
    ERR_clear_error();
    if (clen > 0) OPENSSL_cleanse(c.out, clen);
  }
  return CryptoBoolean(env, ok);
}

}  // namespace

// Adds xaeadSeal/xaeadOpen to the exports; left out when OpenSSL cannot give us ChaCha20-Poly1305.
void InitXaead(Napi::Env env, Napi::Object exports) {
  auto* st = new XaeadState();
  bool ok = NewChaChaPolyPair(&st->enc, &st->dec);
  if (!ok || napi_add_env_cleanup_hook(env, FreeXaeadState, st) != napi_ok) {
    ERR_clear_error();
    FreeXaeadState(st);
    return;
  }
  if (!CryptoExport(env, exports, "xaeadSeal", XaeadSeal, st)) return;
  CryptoExport(env, exports, "xaeadOpen", XaeadOpen, st);
}

}  // namespace tb
