// handshake-flooder: sends WireGuard handshake initiations that carry a VALID
// mac1 for a server's public key, as any customer of the server could (the key
// is in every client config), at a set rate or as fast as it can. Used only by
// bench/flood.ts, inside network namespaces the benchmark creates; compiled
// there with g++ (no library beyond libc).
//
//   handshake-flooder flood DST_IP PORT SERVER_PUBKEY_HEX RATE SECONDS MAX_COUNT [SOURCES FIRST_SRC_IP]
//       RATE initiations per second (0: as fast as it can). Stops after SECONDS
//       or MAX_COUNT messages, whichever comes first (also on SIGTERM/SIGINT), and
//       prints {"sent":N,"seconds":S,"errors":E} on stdout. With SOURCES, the
//       batches go out in turn from SOURCES sockets bound to FIRST_SRC_IP and the
//       addresses after it (which the namespace must have): a many-address flood.
//   handshake-flooder emit SERVER_PUBKEY_HEX COUNT
//       prints COUNT initiations as hex lines (the test checks their mac1 with
//       the project's own CookieChecker).
//
// Message (whitepaper §5.4.2, 148 bytes): type 1 and three zero bytes | sender
// index (LE) | unencrypted_ephemeral (32) | encrypted_static (48) |
// encrypted_timestamp (28) | mac1 (16) | mac2 (16, zero: no cookie held).
// The ephemeral and the encrypted fields are random, so a server pays for
// mac1, a DH and a failed AEAD open per message unless it sheds them first;
// every message differs (sender index and an ephemeral counter), and mac1 is
// computed per message:
//   mac1 = MAC(HASH(LABEL_MAC1 || S_pub_responder), msg[0:116])   (§5.4.4)
// with HASH = BLAKE2s-256 and MAC = keyed BLAKE2s-128 (RFC 7693).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <unistd.h>

namespace {

// ---- BLAKE2s (RFC 7693 §3, §2.7 for the parameters of BLAKE2s) ----
const uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};
const uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
inline uint32_t Load32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// RFC 7693 §3.2, function F with the rotations of BLAKE2s (16, 12, 8, 7).
void Compress(uint32_t h[8], const uint8_t block[64], uint64_t t, bool last) {
  uint32_t m[16], v[16];
  for (int i = 0; i < 16; i++) m[i] = Load32(block + 4 * i);
  for (int i = 0; i < 8; i++) v[i] = h[i], v[i + 8] = kIv[i];
  v[12] ^= uint32_t(t);
  v[13] ^= uint32_t(t >> 32);
  if (last) v[14] = ~v[14];
  auto g = [&](int a, int b, int c, int d, uint32_t x, uint32_t y) {
    v[a] = v[a] + v[b] + x; v[d] = Rotr(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];     v[b] = Rotr(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y; v[d] = Rotr(v[d] ^ v[a], 8);
    v[c] = v[c] + v[d];     v[b] = Rotr(v[b] ^ v[c], 7);
  };
  for (int r = 0; r < 10; r++) {
    const uint8_t* s = kSigma[r];
    g(0, 4, 8, 12, m[s[0]], m[s[1]]);
    g(1, 5, 9, 13, m[s[2]], m[s[3]]);
    g(2, 6, 10, 14, m[s[4]], m[s[5]]);
    g(3, 7, 11, 15, m[s[6]], m[s[7]]);
    g(0, 5, 10, 15, m[s[8]], m[s[9]]);
    g(1, 6, 11, 12, m[s[10]], m[s[11]]);
    g(2, 7, 8, 13, m[s[12]], m[s[13]]);
    g(3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

// BLAKE2s with an optional key (keyed: the key padded to a block comes first, RFC 7693 §3.3).
void Blake2s(uint8_t* out, size_t outlen, const uint8_t* key, size_t keylen, const uint8_t* in, size_t inlen) {
  uint32_t h[8];
  for (int i = 0; i < 8; i++) h[i] = kIv[i];
  h[0] ^= 0x01010000u ^ uint32_t(keylen << 8) ^ uint32_t(outlen);
  uint8_t block[64];
  uint64_t t = 0;
  if (keylen > 0) {
    memset(block, 0, 64);
    memcpy(block, key, keylen);
    t = 64;
    Compress(h, block, t, inlen == 0);
  }
  while (inlen > 64) {
    t += 64;
    Compress(h, in, t, false);
    in += 64, inlen -= 64;
  }
  if (inlen > 0 || keylen == 0) {
    memset(block, 0, 64);
    memcpy(block, in, inlen);
    t += inlen;
    Compress(h, block, t, true);
  }
  uint8_t full[32];
  for (int i = 0; i < 8; i++) for (int j = 0; j < 4; j++) full[4 * i + j] = uint8_t(h[i] >> (8 * j));
  memcpy(out, full, outlen);
}

// ---- initiations ----
constexpr size_t kSize = 148, kSender = 4, kEphemeral = 8, kMac1 = 116;
constexpr int kBatch = 64;

struct Initiations {
  uint8_t mac1_key[32];
  uint8_t seed[kSize];  // random fields, shared; each message then differs in sender index and ephemeral
  uint64_t counter = 0;

  explicit Initiations(const uint8_t server_pub[32]) {
    uint8_t label_and_key[8 + 32];
    memcpy(label_and_key, "mac1----", 8);
    memcpy(label_and_key + 8, server_pub, 32);
    Blake2s(mac1_key, 32, nullptr, 0, label_and_key, sizeof label_and_key);
    FILE* r = fopen("/dev/urandom", "rb");
    if (!r || fread(seed, 1, kSize, r) != kSize) { perror("urandom"); exit(1); }
    fclose(r);
    memset(seed, 0, 4);
    seed[0] = 1;
    memset(seed + kMac1, 0, 32);
  }

  void Next(uint8_t msg[kSize]) {
    memcpy(msg, seed, kSize);
    uint64_t n = counter++;
    for (int i = 0; i < 4; i++) msg[kSender + i] = uint8_t(n >> (8 * i));
    for (int i = 0; i < 8; i++) msg[kEphemeral + i] ^= uint8_t(n >> (8 * i));
    Blake2s(msg + kMac1, 16, mac1_key, 32, msg, kMac1);
  }
};

bool ParseHex32(const char* s, uint8_t out[32]) {
  if (strlen(s) != 64) return false;
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return false;
    out[i] = uint8_t(v);
  }
  return true;
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

volatile sig_atomic_t stop_requested = 0;
void OnSignal(int) { stop_requested = 1; }

int Emit(const uint8_t pub[32], long count) {
  Initiations gen(pub);
  uint8_t msg[kSize];
  for (long i = 0; i < count; i++) {
    gen.Next(msg);
    for (size_t j = 0; j < kSize; j++) printf("%02x", msg[j]);
    printf("\n");
  }
  return 0;
}

constexpr int kMaxSources = 256;

int Flood(const char* ip, int port, const uint8_t pub[32], double rate, double seconds, long max_count, int sources, const char* first_src) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, ip, &dst.sin_addr) != 1) { fprintf(stderr, "bad IPv4 address %s\n", ip); return 2; }
  if (sources < 1 || sources > kMaxSources) { fprintf(stderr, "SOURCES must be 1..%d\n", kMaxSources); return 2; }
  sockaddr_in src{};
  src.sin_family = AF_INET;
  if (first_src && inet_pton(AF_INET, first_src, &src.sin_addr) != 1) { fprintf(stderr, "bad IPv4 address %s\n", first_src); return 2; }
  int fds[kMaxSources];
  for (int i = 0; i < sources; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[i] < 0) { perror("socket"); return 1; }
    if (first_src) {
      sockaddr_in a = src;
      a.sin_addr.s_addr = htonl(ntohl(src.sin_addr.s_addr) + uint32_t(i));
      if (bind(fds[i], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) { perror("bind"); return 1; }
    }
    if (connect(fds[i], reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) { perror("connect"); return 1; }
    int sndbuf = 4 << 20;
    setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  // Without SA_RESTART, so a signal also ends a sendmmsg blocked on a full socket buffer
  // (signal() would restart it) and the count is still printed.
  struct sigaction sa{};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGALRM, &sa, nullptr);
  alarm(unsigned(seconds) + 5);  // a last bound, should the loop below ever miss its own

  Initiations gen(pub);
  static uint8_t bufs[kBatch][kSize];
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < kBatch; i++) {
    iov[i] = {bufs[i], kSize};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  // Paced in batches small enough that the rate is even within a millisecond or two.
  int batch = rate > 0 ? int(rate / 1000) : kBatch;
  if (batch < 1) batch = 1;
  if (batch > kBatch) batch = kBatch;
  const double t0 = Now();
  long sent = 0, errors = 0, batches = 0;
  while (!stop_requested && sent < max_count) {
    double now = Now();
    if (now - t0 >= seconds) break;
    if (rate > 0) {
      double due = t0 + sent / rate;
      if (due > now) {
        double wait = due - now;
        timespec ts{time_t(wait), long((wait - time_t(wait)) * 1e9)};
        nanosleep(&ts, nullptr);
        continue;
      }
    }
    int n = int(max_count - sent < batch ? max_count - sent : batch);
    for (int i = 0; i < n; i++) gen.Next(bufs[i]);
    int r = sendmmsg(fds[batches++ % sources], msgs, unsigned(n), 0);
    if (r < 0) {
      if (errno != EINTR) errors++;
      continue;  // on EINTR the loop's condition sees stop_requested
    }
    sent += r;
  }
  printf("{\"sent\":%ld,\"seconds\":%.3f,\"errors\":%ld}\n", sent, Now() - t0, errors);
  for (int i = 0; i < sources; i++) close(fds[i]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  uint8_t pub[32];
  if ((argc == 8 || argc == 10) && strcmp(argv[1], "flood") == 0 && ParseHex32(argv[4], pub)) {
    return Flood(argv[2], atoi(argv[3]), pub, atof(argv[5]), atof(argv[6]), atol(argv[7]), argc == 10 ? atoi(argv[8]) : 1, argc == 10 ? argv[9] : nullptr);
  }
  if (argc == 4 && strcmp(argv[1], "emit") == 0 && ParseHex32(argv[2], pub)) return Emit(pub, atol(argv[3]));
  fprintf(stderr,
          "usage: handshake-flooder flood DST_IP PORT SERVER_PUBKEY_HEX RATE SECONDS MAX_COUNT [SOURCES FIRST_SRC_IP]\n"
          "       handshake-flooder emit SERVER_PUBKEY_HEX COUNT\n");
  return 2;
}
