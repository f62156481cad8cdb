// TUN: open /dev/net/tun, name/MTU/up-down ioctls, batch read and write.
//
// The kernel reports an interface's deletion on the fd itself: poll returns
// POLLERR, read and write fail with EBADFD (tun_chr_poll, tun_chr_read_iter
// and tun_chr_write_iter once tun_detach_all has cleared tfile->tun). A
// zero-length write tells up from down across namespaces without touching
// data: EINVAL (up: the kernel checked our empty packet), EIO (down), EBADFD
// (gone) — the same probe wireguard-go's routineHackListener uses.
//
// Offloads: with IFF_VNET_HDR (not requested yet) every read and write
// carries a struct virtio_net_hdr in front of the packet. The batch layout
// already has room for it: the wrapper would ask for headroom + 10 bytes and
// pass the header's offset instead of the packet's.
#include "io.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tb {

namespace {

struct OpenJob {
  const char* name;
  int flags;
  int fd;           // out
  char real[IFNAMSIZ];  // out
};

int OpenTunJob(void* p) {
  auto* job = static_cast<OpenJob*>(p);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = static_cast<short>(job->flags);
  strncpy(ifr.ifr_name, job->name, IFNAMSIZ - 1);
  // No TUNSETPERSIST: the interface goes away when the last fd is closed.
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  job->fd = fd;
  memcpy(job->real, ifr.ifr_name, IFNAMSIZ);
  return fd;
}

int SocketJob(void*) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  return s < 0 ? -errno : s;
}

// A socket for SIOC* ioctls in the namespace where the interface lives now:
// after `ip link set NAME netns OTHER`, an ioctl by name in our namespace
// would miss it (or hit another interface of that name).
int ControlSocket(int tunfd) {
  int nsfd = ioctl(tunfd, TUNGETDEVNETNS);
  if (nsfd < 0) {
    if (errno == EBADFD) return -EBADFD;  // the interface is gone
    return SocketJob(nullptr);            // older kernel: our namespace
  }
  int s = IsOwnNetns(nsfd) ? SocketJob(nullptr) : InNetns(nsfd, SocketJob, nullptr);
  close(nsfd);
  return s;
}

// The interface's current name (TUNGETIFF asks the device, so it is right in
// whatever namespace the interface is now, and after a rename).
int CurrentName(int tunfd, struct ifreq* ifr) {
  memset(ifr, 0, sizeof *ifr);
  return ioctl(tunfd, TUNGETIFF, ifr) == 0 ? 0 : -errno;
}

// Runs one SIOC* ioctl on the interface, with ifr's name set to its current
// name (other fields as the caller left them); returns 0 or -errno and names
// the failing call.
int IfIoctl(int tunfd, unsigned long req, struct ifreq* ifr, const char** syscall) {
  *syscall = "ioctl(TUNGETIFF)";
  struct ifreq cur;
  int r = CurrentName(tunfd, &cur);
  if (r != 0) return r;
  memcpy(ifr->ifr_name, cur.ifr_name, IFNAMSIZ);
  *syscall = "socket";
  int s = ControlSocket(tunfd);
  if (s < 0) return s;
  *syscall = req == SIOCGIFMTU ? "ioctl(SIOCGIFMTU)"
             : req == SIOCSIFMTU ? "ioctl(SIOCSIFMTU)"
             : req == SIOCGIFFLAGS ? "ioctl(SIOCGIFFLAGS)"
                                   : "ioctl(SIOCSIFFLAGS)";
  r = ioctl(s, req, ifr) == 0 ? 0 : -errno;
  close(s);
  return r;
}

// tunOpen(name, flags, netns) → Handle. `name` may be a template ("tb%d");
// `flags` are TUNSETIFF flags (IFF_TUN | IFF_NO_PI [| IFF_TUN_EXCL]); `netns`
// is "" (ours) or a namespace file to create the interface in.
Napi::Value TunOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name, netns;
  int64_t flags;
  if (!ArgCount(info, 3) || !ArgString(info, 0, &name) || !ArgInt(info, 1, 0, 0xffff, &flags) ||
      !ArgString(info, 2, &netns)) {
    return env.Undefined();
  }
  if (name.size() >= IFNAMSIZ) {
    Napi::RangeError::New(env, "argument 0: interface name longer than 15 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  OpenJob job{name.c_str(), static_cast<int>(flags), -1, {0}};
  int r;
  if (netns.empty()) {
    r = OpenTunJob(&job);
  } else {
    int nsfd = OpenNetns(netns);
    if (nsfd < 0) return ThrowErrno(env, -nsfd, "open(netns)");
    r = InNetns(nsfd, OpenTunJob, &job);
    close(nsfd);
  }
  if (r < 0) return ThrowErrno(env, -r, netns.empty() ? "ioctl(TUNSETIFF)" : "setns/ioctl(TUNSETIFF)");
  return Handle::New(env, job.fd, Handle::kTun);
}

// tunName(h) → the interface's current name.
Napi::Value TunName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  struct ifreq ifr;
  int r = CurrentName(h->fd(), &ifr);
  if (r != 0) return ThrowErrno(env, -r, "ioctl(TUNGETIFF)");
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  return Napi::String::New(env, ifr.ifr_name);
}

// tunGetMtu(h) → MTU.
Napi::Value TunGetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCGIFMTU, &ifr, &sc);
  if (r != 0) return ThrowErrno(env, -r, sc);
  return Napi::Number::New(env, ifr.ifr_mtu);
}

// tunSetMtu(h, mtu).
Napi::Value TunSetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t mtu;
  if (!ArgCount(info, 2)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr || !ArgInt(info, 1, 68, 65535, &mtu)) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_mtu = static_cast<int>(mtu);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCSIFMTU, &ifr, &sc);
  if (r != 0) return ThrowErrno(env, -r, sc);
  return env.Undefined();
}

// tunGetUp(h) → whether IFF_UP is set.
Napi::Value TunGetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCGIFFLAGS, &ifr, &sc);
  if (r != 0) return ThrowErrno(env, -r, sc);
  return Napi::Boolean::New(env, (ifr.ifr_flags & IFF_UP) != 0);
}

// tunSetUp(h, up): sets or clears IFF_UP.
Napi::Value TunSetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool up;
  if (!ArgCount(info, 2)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr || !ArgBool(info, 1, &up)) return env.Undefined();
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  const char* sc;
  int r = IfIoctl(h->fd(), SIOCGIFFLAGS, &ifr, &sc);
  if (r == 0) {
    if (up) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    } else {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
    }
    r = IfIoctl(h->fd(), SIOCSIFFLAGS, &ifr, &sc);
  }
  if (r != 0) return ThrowErrno(env, -r, sc);
  return env.Undefined();
}

// tunProbe(h) → errno of a zero-length write: EINVAL up, EIO down, EBADFD gone.
Napi::Value TunProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ArgCount(info, 1)) return env.Undefined();
  Handle* h = ArgHandle(info, 0, false);
  if (h == nullptr) return env.Undefined();
  ssize_t n = write(h->fd(), nullptr, 0);
  return Napi::Number::New(env, n < 0 ? errno : 0);
}

// tunRead(h, data, offsets, lengths, null, slotSize, capacity, headroom, res)
//   → packets read (0 when none is pending), or -errno when the first read
//     failed. Reads until EAGAIN or `capacity` packets; packet i goes to
//     data[i*slotSize + headroom], up to slotSize - headroom bytes.
Napi::Value TunRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, false, false, &b)) return env.Undefined();
  const int fd = b.handle->fd();
  const size_t room = b.slotSize - b.headroom;
  size_t n = 0;
  while (n < b.count) {
    ssize_t r = read(fd, b.data + n * b.slotSize + b.headroom, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n == 0) return Napi::Number::New(env, -errno);
      break;  // report what we have; the error repeats on the next call
    }
    b.offsets[n] = static_cast<int32_t>(b.headroom);
    b.lengths[n] = static_cast<int32_t>(r);
    n++;
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// tunWrite(h, data, offsets, lengths, null, slotSize, count, 0, res) → packets
// written. One non-blocking write() per packet; a full queue (EAGAIN,
// ENOBUFS) drops the packet (res[0]), other errors fail it (res[1]).
Napi::Value TunWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ArgBatch(info, false, false, &b) || !CheckPackets(env, b)) return env.Undefined();
  const int fd = b.handle->fd();
  size_t written = 0;
  for (size_t i = 0; i < b.count; i++) {
    ssize_t r;
    do {
      r = write(fd, b.data + i * b.slotSize + b.offsets[i], static_cast<size_t>(b.lengths[i]));
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      written++;
    } else {
      b.res[(errno == EAGAIN || errno == ENOBUFS) ? kResDropped : kResFailed]++;
      b.res[kResLastErrno] = errno;
    }
  }
  return Napi::Number::New(env, static_cast<double>(written));
}

}  // namespace

void InitTun(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New<TunOpen>(env, "tunOpen"));
  exports.Set("tunName", Napi::Function::New<TunName>(env, "tunName"));
  exports.Set("tunGetMtu", Napi::Function::New<TunGetMtu>(env, "tunGetMtu"));
  exports.Set("tunSetMtu", Napi::Function::New<TunSetMtu>(env, "tunSetMtu"));
  exports.Set("tunGetUp", Napi::Function::New<TunGetUp>(env, "tunGetUp"));
  exports.Set("tunSetUp", Napi::Function::New<TunSetUp>(env, "tunSetUp"));
  exports.Set("tunProbe", Napi::Function::New<TunProbe>(env, "tunProbe"));
  exports.Set("tunRead", Napi::Function::New<TunRead>(env, "tunRead"));
  exports.Set("tunWrite", Napi::Function::New<TunWrite>(env, "tunWrite"));
}

}  // namespace tb
