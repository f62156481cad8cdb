// Test-only exports, compiled into the test build of the addon
// (build/Release/tunnelbyte_io_test.node, binding.gyp target
// tunnelbyte_io_test, with TB_TEST_EXPORTS) and never into the production
// addon: they expose the pure parts of the offload paths — how tunWrite
// coalesces TCP segments, how tunRead splits a super-packet, how udpSend
// groups datagrams into UDP_SEGMENT messages and how udpRecv splits a GRO
// message — so test/property/{tun,udp}-offload.test.ts can check them
// against reference models without root, a TUN or a socket.

#include "io.h"

#include <cstring>
#include <string>

#include <netinet/in.h>
#include <sys/socket.h>

namespace tb {
namespace {

const uint8_t* PacketAt(const BatchArgs& b, size_t i) { return b.data + i * b.slotSize + b.offsets[i]; }

// tunCoalesceForTest(data, offsets, lengths, slotSize, count, out, outLengths)
//   → writes. Test-only: the bytes tunWrite with IFF_VNET_HDR would write for
//   packets 0..count-1 (virtio_net_hdr + packet per write), one after another
//   in `out`, write j being outLengths[j] bytes long.
Napi::Value TunCoalesceForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *data, *out;
  size_t dataLen, offLen, lenLen, outLen, outLensLen;
  int32_t *offsets, *lengths, *outLens;
  int64_t slotSize, count;
  if (!ArgCount(info, 7) || !ArgBytes(info, 0, false, &data, &dataLen) || !ArgInt32s(info, 1, &offsets, &offLen) ||
      !ArgInt32s(info, 2, &lengths, &lenLen) || !ArgInt(info, 3, 1, INT32_MAX, &slotSize) ||
      !ArgInt(info, 4, 0, 65536, &count) || !ArgBytes(info, 5, false, &out, &outLen) ||
      !ArgInt32s(info, 6, &outLens, &outLensLen)) {
    return env.Undefined();
  }
  BatchArgs b{nullptr, data, offsets, lengths, nullptr, static_cast<size_t>(slotSize), static_cast<size_t>(count), 0, nullptr, 0};
  auto fail = [&](const char* msg) {
    Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
    return env.Undefined();
  };
  if (b.count > offLen || b.count > lenLen) return fail("argument 4: count exceeds offsets/lengths");
  if (b.count > dataLen / b.slotSize) return fail("argument 4: count * slotSize exceeds data");
  if (!CheckPackets(env, b)) return env.Undefined();
  size_t at = 0, writes = 0;
  Coalesced c;
  for (size_t i = 0; i < b.count;) {
    size_t k = TunCoalesce(b, i, &c);
    size_t len = k == 1 ? kVnetHdrLen + static_cast<size_t>(lengths[i]) : kVnetHdrLen + c.hdrLen + c.payloadLen;
    if (writes >= outLensLen || len > outLen - at) return fail("argument 5/6: out too small");
    if (k == 1) {
      memset(out + at, 0, kVnetHdrLen);
      memcpy(out + at + kVnetHdrLen, PacketAt(b, i), static_cast<size_t>(lengths[i]));
    } else {
      memcpy(out + at, &c.vnet, kVnetHdrLen);
      memcpy(out + at + kVnetHdrLen, c.hdr, c.hdrLen);
      size_t p = at + kVnetHdrLen + c.hdrLen;
      for (size_t j = i; j < i + k; j++) {
        size_t pay = static_cast<size_t>(lengths[j]) - c.hdrLen;
        memcpy(out + p, PacketAt(b, j) + c.hdrLen, pay);
        p += pay;
      }
    }
    outLens[writes++] = static_cast<int32_t>(len);
    at += len;
    i += k;
  }
  return Napi::Number::New(env, static_cast<double>(writes));
}

// tunSegmentForTest(input, data, offsets, lengths, slotSize, count, headroom, res, cursor)
//   → slots filled. Test-only: runs TunDeliver on `input` (virtio_net_hdr +
//   packet, as a read would return it) into slots 0..count-1 of `data`.
//   cursor: Int32Array(2), [next segment (0 for a fresh packet), more]: the
//   call sets more to 1 when segments are left over for the next call
//   (which continues at cursor[0]), else to 0 with cursor[0] = 0.
Napi::Value TunSegmentForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *input, *data;
  size_t inputLen, dataLen, offLen, lenLen, resLen, curLen;
  int32_t *offsets, *lengths, *res, *cursor;
  int64_t slotSize, count, headroom;
  if (!ArgCount(info, 9) || !ArgBytes(info, 0, false, &input, &inputLen) || !ArgBytes(info, 1, false, &data, &dataLen) ||
      !ArgInt32s(info, 2, &offsets, &offLen) || !ArgInt32s(info, 3, &lengths, &lenLen) ||
      !ArgInt(info, 4, 1, INT32_MAX, &slotSize) || !ArgInt(info, 5, 0, 65536, &count) ||
      !ArgInt(info, 6, 0, slotSize - 1, &headroom) || !ArgInt32s(info, 7, &res, &resLen) ||
      !ArgInt32s(info, 8, &cursor, &curLen)) {
    return env.Undefined();
  }
  const size_t n = static_cast<size_t>(count), slot = static_cast<size_t>(slotSize);
  auto fail = [&](const char* msg) {
    Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
    return env.Undefined();
  };
  if (inputLen > kTunScratchSize) return fail("argument 0: longer than a TUN read can be");
  if (n > offLen || n > lenLen) return fail("argument 5: count exceeds offsets/lengths");
  if (n > dataLen / slot) return fail("argument 5: count * slotSize exceeds data");
  if (resLen < kResSize) return fail("argument 7: expected an Int32Array of at least 4 elements");
  if (curLen < 2 || cursor[0] < 0) return fail("argument 8: expected an Int32Array(2) holding a cursor >= 0");
  for (size_t k = 0; k < kResSize; k++) res[k] = 0;
  SlotsOut out{data, offsets, lengths, slot, static_cast<size_t>(headroom), n};
  size_t next = static_cast<size_t>(cursor[0]);
  bool more;
  size_t filled = TunDeliver(input, inputLen, &next, &more, out, 0, res);
  cursor[0] = static_cast<int32_t>(next);
  cursor[1] = more ? 1 : 0;
  return Napi::Number::New(env, static_cast<double>(filled));
}

Napi::Value Fail(Napi::Env env, const char* msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// udpPlanForTest(lengths, endpoints, count, gso, v6sock, out) → messages.
//   Test-only: the messages udpSend would make of datagrams 0..count-1,
//   message m as out[3m] = first datagram, out[3m+1] = datagrams in it,
//   out[3m+2] = UDP_SEGMENT size (0 for a single datagram, sent without the
//   cmsg). Datagrams whose endpoint record this socket cannot send to are
//   skipped (udpSend counts them failed), as udpSend does.
Napi::Value UdpPlanForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t *lengths, *out;
  uint8_t* endpoints;
  size_t lenLen, epLen, outLen;
  int64_t count;
  bool gso, v6sock;
  if (!ArgCount(info, 6) || !ArgInt32s(info, 0, &lengths, &lenLen) || !ArgBytes(info, 1, false, &endpoints, &epLen) ||
      !ArgInt(info, 2, 0, 65536, &count) || !ArgBool(info, 3, &gso) || !ArgBool(info, 4, &v6sock) ||
      !ArgInt32s(info, 5, &out, &outLen)) {
    return env.Undefined();
  }
  const size_t n = static_cast<size_t>(count);
  if (n > lenLen || n > epLen / kEndpointSize) return Fail(env, "argument 2: count exceeds lengths/endpoints");
  for (size_t i = 0; i < n; i++) {
    if (lengths[i] < 0 || lengths[i] > 65535) return Fail(env, "argument 0: lengths must be in 0..65535");
  }
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    struct sockaddr_in6 sa;
    socklen_t salen;
    if (DecodeEndpoint(endpoints + i * kEndpointSize, v6sock, &sa, &salen) != 0) {
      i++;
      continue;
    }
    size_t seg;
    const size_t k = UdpRun(endpoints, lengths, i, n, gso, &seg);
    if (3 * m + 3 > outLen) return Fail(env, "argument 5: out too small");
    out[3 * m] = static_cast<int32_t>(i);
    out[3 * m + 1] = static_cast<int32_t>(k);
    out[3 * m + 2] = k > 1 ? static_cast<int32_t>(seg) : 0;
    m++;
    i += k;
  }
  return Napi::Number::New(env, static_cast<double>(m));
}

// udpSplitForTest(input, gsoSize, data, offsets, lengths, slotSize, count, headroom, res, cursor)
//   → slots filled. Test-only: GroDeliver of one received message (`input`,
//   gsoSize as its UDP_GRO cmsg said, 0 for none) into slots 0..count-1;
//   cursor = Int32Array(2) [next piece, more] as for tunSegmentForTest.
Napi::Value UdpSplitForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *input, *data;
  size_t inputLen, dataLen, offLen, lenLen, resLen, curLen;
  int32_t *offsets, *lengths, *res, *cursor;
  int64_t gsoSize, slotSize, count, headroom;
  if (!ArgCount(info, 10) || !ArgBytes(info, 0, false, &input, &inputLen) || !ArgInt(info, 1, 0, 65535, &gsoSize) ||
      !ArgBytes(info, 2, false, &data, &dataLen) || !ArgInt32s(info, 3, &offsets, &offLen) ||
      !ArgInt32s(info, 4, &lengths, &lenLen) || !ArgInt(info, 5, 1, INT32_MAX, &slotSize) ||
      !ArgInt(info, 6, 0, 65536, &count) || !ArgInt(info, 7, 0, slotSize - 1, &headroom) ||
      !ArgInt32s(info, 8, &res, &resLen) || !ArgInt32s(info, 9, &cursor, &curLen)) {
    return env.Undefined();
  }
  const size_t n = static_cast<size_t>(count), slot = static_cast<size_t>(slotSize);
  if (inputLen > kGroBufSize) return Fail(env, "argument 0: longer than a received message can be");
  if (n > offLen || n > lenLen) return Fail(env, "argument 6: count exceeds offsets/lengths");
  if (n > dataLen / slot) return Fail(env, "argument 6: count * slotSize exceeds data");
  if (resLen < kResSize) return Fail(env, "argument 8: expected an Int32Array of at least 4 elements");
  if (curLen < 2 || cursor[0] < 0) return Fail(env, "argument 9: expected an Int32Array(2) holding a cursor >= 0");
  for (size_t k = 0; k < kResSize; k++) res[k] = 0;
  SlotsOut out{data, offsets, lengths, slot, static_cast<size_t>(headroom), n};
  size_t next = static_cast<size_t>(cursor[0]);
  bool more;
  size_t filled = GroDeliver(input, inputLen, static_cast<size_t>(gsoSize), &next, &more, out, 0, res);
  cursor[0] = static_cast<int32_t>(next);
  cursor[1] = more ? 1 : 0;
  return Napi::Number::New(env, static_cast<double>(filled));
}

// udpShedForTest(shares, perCall, data, offsets, lengths, endpoints, times, calls, out)
//   → messages judged. Test-only: ShedDecide (udp-shed.cc) over messages
//   0..n-1 (message i: data[offsets[i], +lengths[i]) from endpoint record
//   endpoints[20i..], at times[i] ms), with a new shed of shares = Int32Array
//   [perSecond, burst, loadedPerSecond, loadedBurst], whose udpRecv calls
//   begin at every i where calls[i] & 1, and which is under load from every i
//   where calls[i] & 2 until the next i without; out[i] = the verdict (-1
//   keep, else the reason, SHED_* in src/io/batch.ts).
Napi::Value UdpShedForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t perCall;
  uint8_t *data, *endpoints, *calls;
  size_t sharesLen, dataLen, offLen, lenLen, epLen, callsLen, outLen;
  int32_t *shares, *offsets, *lengths, *out;
  if (!ArgCount(info, 9) || !ArgInt32s(info, 0, &shares, &sharesLen) || !ArgInt(info, 1, 1, 65536, &perCall) ||
      !ArgBytes(info, 2, false, &data, &dataLen) || !ArgInt32s(info, 3, &offsets, &offLen) ||
      !ArgInt32s(info, 4, &lengths, &lenLen) || !ArgBytes(info, 5, false, &endpoints, &epLen)) {
    return env.Undefined();
  }
  if (!info[6].IsTypedArray() || info[6].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    return Fail(env, "argument 6: expected a Float64Array");
  }
  auto times = info[6].As<Napi::Float64Array>();
  if (!ArgBytes(info, 7, false, &calls, &callsLen) || !ArgInt32s(info, 8, &out, &outLen)) return env.Undefined();
  if (sharesLen != 4) return Fail(env, "argument 0: expected Int32Array [perSecond, burst, loadedPerSecond, loadedBurst]");
  for (size_t k = 0; k < 4; k++) {
    if (shares[k] < 1 || shares[k] > 1000000) return Fail(env, "argument 0: shares must be in 1..1000000");
  }
  const size_t n = offLen;
  if (lenLen != n || times.ElementLength() != n || callsLen != n || outLen != n || epLen != n * kEndpointSize) {
    return Fail(env, "offsets, lengths, times, calls and out must have one element per message, endpoints 20 bytes each");
  }
  for (size_t i = 0; i < n; i++) {
    if (offsets[i] < 0 || lengths[i] < 0 || static_cast<size_t>(offsets[i]) + static_cast<size_t>(lengths[i]) > dataLen) {
      return Fail(env, ("message " + std::to_string(i) + " lies outside data").c_str());
    }
  }
  ShedState s(shares[0], shares[1], shares[2], shares[3], static_cast<uint32_t>(perCall));
  for (size_t i = 0; i < n; i++) {
    if ((calls[i] & 1) != 0 || i == 0) ShedBeginCall(&s);
    s.underLoad = (calls[i] & 2) != 0;
    out[i] = ShedDecide(&s, data + offsets[i], static_cast<size_t>(lengths[i]), endpoints + i * kEndpointSize, times[i]);
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

void InitTestExports(Napi::Env env, Napi::Object exports) {
  exports.Set("tunSegmentForTest", Napi::Function::New<TunSegmentForTest>(env, "tunSegmentForTest"));
  exports.Set("tunCoalesceForTest", Napi::Function::New<TunCoalesceForTest>(env, "tunCoalesceForTest"));
  exports.Set("udpPlanForTest", Napi::Function::New<UdpPlanForTest>(env, "udpPlanForTest"));
  exports.Set("udpSplitForTest", Napi::Function::New<UdpSplitForTest>(env, "udpSplitForTest"));
  exports.Set("udpShedForTest", Napi::Function::New<UdpShedForTest>(env, "udpShedForTest"));
}

}  // namespace tb
