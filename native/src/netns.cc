// Network namespaces without moving the Node thread.
//
// A socket or a /dev/net/tun file belongs to the network namespace of the
// thread that opened it, and keeps it for life. So to open one in another
// namespace we start a thread, setns() it there, open, and join: the Node
// thread (and libuv's threads) never change namespace. Used to create a TUN
// or UDP socket directly inside a namespace (tests; `ip netns exec` without
// a child process) and to reach a TUN interface that has been moved to
// another namespace with `ip link set NAME netns NS` (see ControlSocket in
// tun.cc).
#include "io.h"

#include <cerrno>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tb {

namespace {

struct NetnsJob {
  int nsfd;
  int (*fn)(void*);
  void* arg;
  int result;
};

void* RunJob(void* p) {
  auto* job = static_cast<NetnsJob*>(p);
  if (setns(job->nsfd, CLONE_NEWNET) != 0) {
    job->result = -errno;
  } else {
    job->result = job->fn(job->arg);
  }
  return nullptr;
}

}  // namespace

int InNetns(int nsfd, int (*fn)(void*), void* arg) {
  NetnsJob job{nsfd, fn, arg, -EINVAL};
  pthread_t t;
  int r = pthread_create(&t, nullptr, RunJob, &job);
  if (r != 0) return -r;
  pthread_join(t, nullptr);
  return job.result;
}

int OpenNetns(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

bool IsOwnNetns(int nsfd) {
  struct stat a, b;
  if (fstat(nsfd, &a) != 0 || stat("/proc/thread-self/ns/net", &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace tb
