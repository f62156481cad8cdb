// The tunnelbyte_io addon: file descriptors for a TUN device and a UDP socket,
// polled by the Node event loop, and batch read/write calls over the memory of
// a PacketBatch (src/io/batch.ts). See ../README.md.
//
// Rules for every file here: no C++ exceptions (NAPI_DISABLE_CPP_EXCEPTIONS,
// -fno-exceptions); every export checks its arguments with the helpers below
// and throws a TypeError/RangeError for misuse; failing syscalls throw an
// Error carrying `code` ("EBUSY"), `errno` and `syscall`. Options, defaults and
// policy live in the TypeScript wrapper (src/io/linux/).
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

namespace tb {

struct EnvState;

// ---- the receive-side shed (udp-shed.cc says what it does and why)
struct ShedKey {
  uint8_t family;  // 4 or 6
  uint64_t addr;   // the IPv4 address, or the IPv6 /64
  bool operator==(const ShedKey& o) const { return family == o.family && addr == o.addr; }
};
struct ShedKeyHash {
  size_t operator()(const ShedKey& k) const;
};
struct ShedBucket {
  double tokens;  // ms of sending allowed, as rate-limiter.ts
  double last;    // ms, CLOCK_MONOTONIC
};
// One share per source: a token bucket per address (rate-limiter.ts).
struct ShedShare {
  ShedShare(double perSecond, double burst);
  const double packetCost;  // ms of tokens per message
  const double bucketMax;
  std::unordered_map<ShedKey, ShedBucket, ShedKeyHash> buckets;
};
struct ShedState {
  ShedState(double perSecond, double burst, double loadedPerSecond, double loadedBurst, uint32_t perCallCap);
  ShedShare share;         // always
  ShedShare loadedShare;   // as well, while the device is under load
  bool underLoad = false;  // set by the wrapper (udpShedUnderLoad) as the device's state changes
  const uint32_t perCall;
  double lastGc = -1e300;
  uint32_t handshakes = 0;       // kept in this call from sources that have been sending
  uint32_t freshHandshakes = 0;  // kept in this call from sources whose bucket was full
};
// Verdicts: keep, or a reason, which is also the index of its counter in
// res[kResSize + reason] (src/io/batch.ts SHED_*).
constexpr int kShedKeep = -1;
constexpr int kShedTooShort = 0;
constexpr int kShedUnknownType = 1;
constexpr int kShedBadLength = 2;
constexpr int kShedSourceLimited = 3;
constexpr int kShedQueueFull = 4;
constexpr size_t kShedReasons = 5;
// Milliseconds on CLOCK_MONOTONIC.
double ShedNowMs();
// Starts a udpRecv call (resets the per-call counts).
void ShedBeginCall(ShedState* s);
// The verdict for datagram p[0, len) from endpoint record rec at time now (ms).
int ShedDecide(ShedState* s, const uint8_t* p, size_t len, const uint8_t* rec, double now);

// Room for one control message of an int (UDP_SEGMENT's uint16_t on send,
// UDP_GRO's int on receive), aligned as a struct cmsghdr must be.
struct UdpCmsg {
  alignas(struct cmsghdr) uint8_t b[CMSG_SPACE(sizeof(int))];
};

// One owned, non-blocking file descriptor (a TUN queue or a UDP socket) and
// the uv_poll_t that watches it for readability. Created by tunOpen/udpOpen,
// closed by close(), by the garbage collector, or at environment teardown.
class Handle : public Napi::ObjectWrap<Handle> {
 public:
  enum Kind { kTun = 1, kUdp4 = 2, kUdp6 = 3 };

  static Napi::Function DefineClass(Napi::Env env);
  // Wraps `fd` (taking ownership) in a new JS Handle object.
  static Napi::Object New(Napi::Env env, int fd, Kind kind);
  // The class, for instanceof checks.
  static napi_value Constructor(Napi::Env env);

  explicit Handle(const Napi::CallbackInfo& info);
  ~Handle() override;

  int fd() const { return fd_; }
  Kind kind() const { return kind_; }

  // Closes the fd and the poll handle; safe to call twice. Called from JS,
  // the destructor and the environment cleanup hook.
  void CloseNow();

  // recvmmsg/sendmmsg scratch, sized on demand and reused across calls.
  std::vector<struct mmsghdr> msgs;
  std::vector<struct iovec> iovs;
  std::vector<struct sockaddr_in6> addrs;

  // A TUN opened with IFF_VNET_HDR (tun.cc, tun-offload.cc): every read()
  // lands in `tunScratch` (kTunScratchSize bytes, allocated once at open) as
  // virtio_net_hdr + packet and is copied or segmented into the batch from
  // there. A super-packet whose segments did not all fit the batch stays in
  // the scratch (`tunPendLen` bytes) and tunRead continues it next time at
  // segment `tunPendNext`, before reading anything new, so nothing is lost
  // and order is kept.
  bool vnetHdr = false;
  std::vector<uint8_t> tunScratch;
  size_t tunPendLen = 0;  // 0: nothing pending
  size_t tunPendNext = 0;

  // UDP offloads (udp.cc, udp-offload.cc). udpGso: sends group runs of
  // datagrams into UDP_SEGMENT messages (turned off for good when the kernel
  // refuses one as unsupported); udpGsoConfirmed once one went out, after
  // which EINVAL means "this message" rather than "this kernel".
  bool udpGso = false;
  bool udpGsoConfirmed = false;
  // The send plan, one entry per message (run): its first datagram, how many
  // datagrams, and the cmsg carrying UDP_SEGMENT when more than one.
  std::vector<uint32_t> msgFirst;
  std::vector<uint32_t> msgSegs;
  std::vector<UdpCmsg> cmsgs;
  // UDP_GRO: once it has been on, every receive goes through `groScratch`
  // (kGroMsgs buffers of kGroBufSize, allocated once, reused) so a coalesced
  // datagram always fits; its pieces go to the batch. What did not fit the
  // batch stays there (messages groNext..groCount-1, the first from piece
  // groPiece) and is delivered before anything new is read.
  bool udpGro = false;
  std::unique_ptr<uint8_t[]> groScratch;
  std::vector<struct sockaddr_in6> groAddrs;
  std::vector<int32_t> groLens;   // -1: truncated (dropped)
  std::vector<uint16_t> groSizes;  // gso_size from the UDP_GRO cmsg, 0 without one
  size_t groCount = 0;
  size_t groNext = 0;
  size_t groPiece = 0;
  // The receive-side shed (udpSetShed; udp-shed.cc), null while off.
  std::unique_ptr<ShedState> shed;

 private:
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value LoopRef(const Napi::CallbackInfo& info);
  Napi::Value LoopUnref(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);

  static void OnPoll(uv_poll_t* poll, int status, int events);
  void StopPolling();

  EnvState* state_ = nullptr;
  napi_env env_ = nullptr;
  int fd_ = -1;
  Kind kind_ = kTun;
  uv_poll_t* poll_ = nullptr;  // allocated on first Poll(); freed by its close callback
  bool polling_ = false;
  bool pinned_ = false;  // a strong reference to our JS object while a callback is set
  bool ref_ = true;
  Napi::FunctionReference cb_;
  napi_async_context async_ = nullptr;
};

// ---- argument checks (args.cc). Each throws and returns false on bad input.
bool ArgCount(const Napi::CallbackInfo& info, size_t n);
bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t min, int64_t max, int64_t* out);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, bool* out);
bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out);
// A Uint8Array (or Buffer) or, when allowNull, null (data = nullptr, len = 0).
bool ArgBytes(const Napi::CallbackInfo& info, size_t i, bool allowNull, uint8_t** data, size_t* len);
bool ArgInt32s(const Napi::CallbackInfo& info, size_t i, int32_t** data, size_t* len);
// An open Handle: a UDP socket (kUdp4/kUdp6) when udp, else a TUN (kTun).
Handle* ArgHandle(const Napi::CallbackInfo& info, size_t i, bool udp);

// The batch arguments every read/write export takes, in this order:
//   (handle, data, offsets, lengths, endpoints|null, slotSize, count, headroom, res)
// `count` slots must lie inside `data`; `res` is an Int32Array(4) of results.
struct BatchArgs {
  Handle* handle;
  uint8_t* data;
  int32_t* offsets;
  int32_t* lengths;
  uint8_t* endpoints;  // ENDPOINT_SIZE bytes per slot, or nullptr
  size_t slotSize;
  size_t count;
  size_t headroom;
  int32_t* res;
  size_t resLen;
};
constexpr size_t kEndpointSize = 20;
constexpr size_t kResSize = 4;
// res[] slots
constexpr int kResDropped = 0;    // dropped: queue/buffer full (EAGAIN, ENOBUFS) or truncated on receive
constexpr int kResFailed = 1;     // other per-packet errors
constexpr int kResLastErrno = 2;  // errno of the last drop or failure
constexpr int kResGso = 3;        // with IFF_VNET_HDR: super-packets split (tunRead) or written (tunWrite)
bool ArgBatch(const Napi::CallbackInfo& info, bool udp, bool wantEndpoints, BatchArgs* out);
// For writes: every packet i < count must satisfy 0 <= offsets[i], 0 <= lengths[i],
// offsets[i] + lengths[i] <= slotSize. Throws RangeError otherwise.
bool CheckPackets(Napi::Env env, const BatchArgs& b);

// ---- TUN offloads (tun-offload.cc)
// struct virtio_net_hdr and its constants from include/uapi/linux/virtio_net.h,
// spelled out because that header does not compile as C++ (a member of
// another struct in it is named `class`). 16-bit fields in host byte order
// (tun-offload.cc says why).
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
constexpr uint8_t kVnetFlagNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetGsoNone = 0;        // VIRTIO_NET_HDR_GSO_NONE
constexpr uint8_t kVnetGsoTcpV4 = 1;       // VIRTIO_NET_HDR_GSO_TCPV4
constexpr uint8_t kVnetGsoUdp = 3;         // VIRTIO_NET_HDR_GSO_UDP (UFO)
constexpr uint8_t kVnetGsoTcpV6 = 4;       // VIRTIO_NET_HDR_GSO_TCPV6
constexpr uint8_t kVnetGsoUdpL4 = 5;       // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
constexpr uint8_t kVnetGsoEcn = 0x80;      // VIRTIO_NET_HDR_GSO_ECN
// sizeof(struct virtio_net_hdr), as set with TUNSETVNETHDRSZ.
constexpr size_t kVnetHdrLen = 10;
static_assert(sizeof(VirtioNetHdr) == kVnetHdrLen, "struct virtio_net_hdr is 10 bytes");
// One read with IFF_VNET_HDR: the header and a packet of up to 64 KiB (the
// TUN's GSO limit; IPv6 may add its 40-byte header to a 65535-byte payload).
constexpr size_t kTunScratchSize = kVnetHdrLen + 65536 + 64;
// Slots to deliver packets to: slot i at data[i*slotSize + headroom], up to
// slotSize - headroom bytes, for i < count.
struct SlotsOut {
  uint8_t* data;
  int32_t* offsets;
  int32_t* lengths;
  size_t slotSize;
  size_t headroom;
  size_t count;
};
// Turns one read from a TUN with IFF_VNET_HDR (buf: virtio_net_hdr + packet,
// len bytes) into plain IP packets in slots first, first+1, ... < out.count:
// the packet with its checksum completed, or the segments of a TCP super-
// packet starting at segment *next (0 for a new read). Returns the slots
// filled. When segments are left over for lack of slots, *more is set and
// *next is where to continue; else *more is false and *next 0. Drops are
// counted in res (kResDropped: too big for a slot; kResFailed: malformed or
// an unsupported GSO type), super-packets in res[kResGso].
size_t TunDeliver(const uint8_t* buf, size_t len, size_t* next, bool* more, const SlotsOut& out, size_t first,
                  int32_t* res);

// The write side (GRO, as the kernel's tcp_gro_receive would merge them):
// consecutive TCP segments of one flow in a batch become one GSO_TCPV4/6
// write of up to 64 KiB, so the kernel's stack takes in one skb instead of
// dozens. At most this many segments per write (and iovecs 2 more).
constexpr size_t kMaxCoalesce = 256;
// The largest IP + TCP header a coalesced write carries (IPv6 + 60).
constexpr size_t kMaxCoalesceHdr = 100;
struct Coalesced {
  VirtioNetHdr vnet;              // GSO_TCPV4/6, NEEDS_CSUM
  uint8_t hdr[kMaxCoalesceHdr];   // the first segment's headers, lengths and checksums fixed
  size_t hdrLen;
  size_t payloadLen;              // bytes behind hdr, from the segments
};
// How many packets from slot `first` on can go out as one write: 1 (write it
// as it is), or k >= 2 with `c` describing the coalesced packet: c->hdr then
// the payload of each of the k packets (after c->hdrLen bytes) in order.
// The packets are only read. Only segments whose IPv4 header and TCP
// checksums verify are merged, so the kernel's checksum check is not lost.
size_t TunCoalesce(const BatchArgs& b, size_t first, Coalesced* c);

// ---- UDP offloads (udp-offload.cc)
// A UDP_SEGMENT message holds at most this many datagrams: UDP_MAX_SEGMENTS
// in include/linux/udp.h (64 until 6.9 raised it to 128; 64 works everywhere).
constexpr size_t kGsoMaxSegs = 64;
// And at most this many payload bytes: the largest UDP payload, since
// udp_sendmsg builds one skb of the whole message before segmenting it and
// checks it as one datagram (EMSGSIZE beyond) — over IPv4 65535 - 20 (IP
// header) - 8 (ip_append_data), over IPv6 65535 - 8 (the payload length
// field covers the UDP header; measured on 6.18: 65527 goes, 65528 does not).
constexpr size_t kGsoMaxBytes4 = 65535 - 20 - 8;
constexpr size_t kGsoMaxBytes6 = 65535 - 8;
// How many datagrams from `first` on go out as one message: 1, or a run of
// consecutive datagrams with the same endpoint record, all `*segSize` bytes
// but the last, which may be shorter (and ends the run), capped as above.
// Zero-length datagrams are never grouped (a 0-byte segment would vanish).
// With gso false always 1. Only reads lengths[first..count) and endpoints.
size_t UdpRun(const uint8_t* endpoints, const int32_t* lengths, size_t first, size_t count, bool gso, size_t* segSize);
// Coalesced datagrams from UDP_GRO: udp_gro_receive (net/ipv4/udp_offload.c)
// merges at most UDP_GRO_CNT_MAX (64) of them, up to 64 KiB.
constexpr size_t kGroBufSize = 65536;
// recvmmsg messages per call with GRO (the scratch is kGroMsgs * 64 KiB).
constexpr size_t kGroMsgs = 64;
// Splits one received message (len bytes at buf, gsoSize from its UDP_GRO
// cmsg or 0) into datagrams of gsoSize bytes (the last may be shorter) in
// slots first, first+1, ... < out.count, starting at piece *next. Returns the
// slots filled; *more when pieces are left for lack of slots (continue at
// *next), else *next = 0. A piece too big for a slot's room is dropped and
// counted (kResDropped, EMSGSIZE); a message split in two or more pieces is
// counted in res[kResGso] when its first piece is delivered.
size_t GroDeliver(const uint8_t* buf, size_t len, size_t gsoSize, size_t* next, bool* more, const SlotsOut& out,
                  size_t first, int32_t* res);
// Endpoint record → destination for a socket of this kind (v6sock: dual-stack
// AF_INET6); 0 or an errno (EAFNOSUPPORT, EDESTADDRREQ). udp.cc.
int DecodeEndpoint(const uint8_t* rec, bool v6sock, struct sockaddr_in6* out, socklen_t* len);

// ---- errors
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall);

// ---- network namespaces (netns.cc)
// Runs fn(arg) on a short-lived thread that first joins the network namespace
// `nsfd`, so the Node thread never changes namespace. Sockets and /dev/net/tun
// files belong to the namespace they were opened in, so an fd returned by fn
// keeps working from any thread. Returns fn's result, or -errno.
int InNetns(int nsfd, int (*fn)(void*), void* arg);
// Opens a namespace file (/run/netns/NAME, /proc/PID/ns/net); -errno on failure.
int OpenNetns(const std::string& path);
// True when nsfd names the calling thread's own network namespace.
bool IsOwnNetns(int nsfd);

// ---- module parts
void InitTun(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitPing(Napi::Env env, Napi::Object exports);
void InitUdpShed(Napi::Env env, Napi::Object exports);  // udp-shed.cc: udpSetShed
void InitAead(Napi::Env env, Napi::Object exports);  // aead.cc: the transport AEAD, not I/O
void InitBlake2s(Napi::Env env, Napi::Object exports);  // blake2s.cc: HASH, MAC, HMAC of the handshake
void InitXaead(Napi::Env env, Napi::Object exports);  // xaead.cc: XChaCha20-Poly1305 of cookie replies
// test-exports.cc, only in the test build (TB_TEST_EXPORTS): tunSegmentForTest, tunCoalesceForTest,
// udpPlanForTest, udpSplitForTest.
void InitTestExports(Napi::Env env, Napi::Object exports);

}  // namespace tb
