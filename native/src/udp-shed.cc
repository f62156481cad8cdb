// The receive-side shed: WireGuard datagrams classified and, where the
// device could not use them, dropped here in C++ before JavaScript sees them
// (issue 15: a many-address handshake flood kept the device thread busy
// receiving and shedding while the socket overflowed).
//
// Per datagram, after recvmmsg (udp.cc) and before it takes a slot:
//  1. Type and exact size (whitepaper §5.4: initiation 148 bytes, response
//     92, cookie reply 64, transport data at least 32; the three bytes after
//     the type are zero). Transport data is always kept: it is what the
//     device exists for and costs no handshake work. Anything else is dropped
//     and counted as too short, unknown type or bad length, as the device's
//     classify() (src/protocol/messages.ts) would.
//  2. Handshake messages pass a per-source token bucket: per IPv4 address,
//     per IPv6 /64, port ignored — and while the device is under load (the
//     wrapper says so, udpShedUnderLoad) a second, smaller one as well: the
//     rule of the device's handshake queue (src/device/handshake-queue.ts,
//     queueHandshake in device-core.ts, RateLimiter in
//     src/protocol/rate-limiter.ts), in the same double arithmetic, so the
//     TypeScript limiter is the reference model of this one
//     (test/property/udp-shed.test.ts). A message over its source's share is
//     dropped ("handshake-source-limited").
//  3. And a per-call cap: at most `perCall` handshake messages per udpRecv
//     call from sources that have been sending (their bucket was not full),
//     and as many again from "fresh" sources (bucket full: new, or quiet for
//     burst/rate seconds), so a new client's initiation is not crowded out
//     of a call by a flood from sources over their idle level. Beyond the
//     cap: dropped as "handshake-queue-full" (the device could not queue it
//     this turn anyway).
//
// The table of buckets is a hash map keyed by address, swept of entries idle
// for a second once a second (as the TypeScript limiter's gc()); whether an
// entry was swept never changes a decision, since a bucket refills to full
// within burst/rate <= 1 s.
#include "io.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <new>

namespace tb {

namespace {

// Message types and sizes, whitepaper §5.4.2–§5.4.6 (src/protocol/messages.ts).
constexpr uint8_t kMsgInitiation = 1, kMsgResponse = 2, kMsgCookieReply = 3, kMsgTransport = 4;
constexpr size_t kInitiationSize = 148, kResponseSize = 92, kCookieReplySize = 64, kTransportMinSize = 32;
// Entries idle this long are swept (rate-limiter.ts IDLE_AFTER).
constexpr double kIdleAfterMs = 1000;

}  // namespace

size_t ShedKeyHash::operator()(const ShedKey& k) const {
  uint64_t x = k.addr ^ (static_cast<uint64_t>(k.family) << 56);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return static_cast<size_t>(x);
}

ShedShare::ShedShare(double perSecond, double burst) : packetCost(1000 / perSecond), bucketMax(1000 / perSecond * burst) {}

ShedState::ShedState(double perSecond, double burst, double loadedPerSecond, double loadedBurst, uint32_t perCallCap)
    : share(perSecond, burst), loadedShare(loadedPerSecond, loadedBurst), perCall(perCallCap) {}

double ShedNowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void ShedBeginCall(ShedState* s) {
  s->handshakes = 0;
  s->freshHandshakes = 0;
}

namespace {

void Sweep(ShedShare* sh, double now) {
  for (auto it = sh->buckets.begin(); it != sh->buckets.end();) {
    if (now - it->second.last > kIdleAfterMs) {
      it = sh->buckets.erase(it);
    } else {
      ++it;
    }
  }
}

// The bucket step of RateLimiter.take (rate-limiter.ts), operation for
// operation: 0 refused, 1 allowed, 2 allowed and the bucket was full.
int Take(ShedShare* sh, const ShedKey& key, double now) {
  auto it = sh->buckets.find(key);
  if (it == sh->buckets.end()) {
    sh->buckets.emplace(key, ShedBucket{sh->bucketMax - sh->packetCost, now});
    return 2;
  }
  ShedBucket& b = it->second;
  b.tokens = std::fmin(sh->bucketMax, b.tokens + (now - b.last));
  b.last = now;
  if (b.tokens >= sh->packetCost) {
    const bool full = b.tokens == sh->bucketMax;
    b.tokens -= sh->packetCost;
    return full ? 2 : 1;
  }
  return 0;
}

}  // namespace

// The device's queueHandshake admission (device-core.ts): the share, and
// under load the smaller share as well; whether the source was fresh is the
// last bucket's answer.
int ShedTake(ShedState* s, const uint8_t* rec, double now) {
  if (now - s->lastGc >= kIdleAfterMs) {
    Sweep(&s->share, now);
    Sweep(&s->loadedShare, now);
    s->lastGc = now;
  }
  ShedKey key{rec[0] == 6 ? uint8_t{6} : uint8_t{4}, 0};
  if (key.family == 6) {
    memcpy(&key.addr, rec + 4, 8);  // the /64
  } else {
    uint32_t a;
    memcpy(&a, rec + 4, 4);
    key.addr = a;
  }
  const int t = Take(&s->share, key, now);
  if (t == 0 || !s->underLoad) return t;
  return Take(&s->loadedShare, key, now);
}

int ShedDecide(ShedState* s, const uint8_t* p, size_t len, const uint8_t* rec, double now) {
  if (len < 4) return kShedTooShort;
  if (p[1] != 0 || p[2] != 0 || p[3] != 0) return kShedUnknownType;
  switch (p[0]) {
    case kMsgTransport:
      return len >= kTransportMinSize ? kShedKeep : kShedBadLength;
    case kMsgInitiation:
      if (len != kInitiationSize) return kShedBadLength;
      break;
    case kMsgResponse:
      if (len != kResponseSize) return kShedBadLength;
      break;
    case kMsgCookieReply:
      if (len != kCookieReplySize) return kShedBadLength;
      break;
    default:
      return kShedUnknownType;
  }
  const int t = ShedTake(s, rec, now);
  if (t == 0) return kShedSourceLimited;
  uint32_t& n = t == 2 ? s->freshHandshakes : s->handshakes;
  if (n >= s->perCall) return kShedQueueFull;
  n++;
  return kShedKeep;
}

namespace {

// udpSetShed(h, perSecond, burst, loadedPerSecond, loadedBurst, perCall):
// turns the shed on for this socket with these shares (perCall 0 turns it
// off and forgets the buckets). From then on udpRecv needs res of at least
// kResSize + kShedReasons elements and counts what it shed in
// res[kResSize + reason].
Napi::Value UdpSetShed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 6)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  int64_t rate, burst, loadedRate, loadedBurst, perCall;
  if (h == nullptr || !ArgInt(info, 1, 1, 1000000, &rate) || !ArgInt(info, 2, 1, 1000000, &burst) ||
      !ArgInt(info, 3, 1, 1000000, &loadedRate) || !ArgInt(info, 4, 1, 1000000, &loadedBurst) ||
      !ArgInt(info, 5, 0, 65536, &perCall)) {
    return env.Undefined();
  }
  if (perCall == 0) {
    h->shed.reset();
  } else {
    h->shed.reset(new (std::nothrow) ShedState(static_cast<double>(rate), static_cast<double>(burst), static_cast<double>(loadedRate),
                                               static_cast<double>(loadedBurst), static_cast<uint32_t>(perCall)));
    if (!h->shed) return ThrowErrno(env, ENOMEM, "udpSetShed");
  }
  return env.Undefined();
}

// udpShedUnderLoad(h, on): the device went under load (on) or out of it; the
// smaller share applies while on. Nothing without the shed.
Napi::Value UdpShedUnderLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 2)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, true);
  bool on;
  if (h == nullptr || !ArgBool(info, 1, &on)) return env.Undefined();
  if (h->shed) h->shed->underLoad = on;
  return env.Undefined();
}

}  // namespace

void InitUdpShed(Napi::Env env, Napi::Object exports) {
  exports.Set("udpSetShed", Napi::Function::New<UdpSetShed>(env, "udpSetShed"));
  exports.Set("udpShedUnderLoad", Napi::Function::New<UdpShedUnderLoad>(env, "udpShedUnderLoad"));
}

}  // namespace tb
