// thread_echo_server: the thread-per-connection peer of the TCP echo benchmark
// (bench/echo/run_echo.sh).
//
// Blocking sockets, one thread per connection, each thread reading what is there and writing it
// back. Threads get 64 KiB stacks (instead of the 8 MiB default), so that 10,000 of them fit
// comfortably; the kernel only backs the pages they touch. Prints "listening on <port>" first,
// then serves until SIGINT/SIGTERM.
//
// Usage: thread_echo_server [--port P]     (0, the default, picks a free port)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

void* serve(void* arg) {
  int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = ::send(fd, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) goto done;
      off += w;
    }
  }
done:
  ::close(fd);
  return nullptr;
}

void* accept_loop(void* arg) {
  int lfd = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (;;) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::fprintf(stderr, "thread_echo_server: accept: %s\n", std::strerror(errno));
      if (errno == EMFILE || errno == ENFILE) ::usleep(10'000);  // let connections close
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t th;
    int rc = ::pthread_create(&th, &attr, serve, reinterpret_cast<void*>(std::intptr_t{fd}));
    if (rc != 0) {
      std::fprintf(stderr, "thread_echo_server: pthread_create: %s\n", std::strerror(rc));
      ::close(fd);
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: thread_echo_server [--port P]\n");
      return 2;
    }
  }
  // SIGINT and SIGTERM are blocked in every thread (the mask is inherited) and taken by
  // sigwait in the main thread.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 4096) != 0) {
    std::perror("thread_echo_server: bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening on %u\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  pthread_t acceptor;
  pthread_create(&acceptor, nullptr, accept_loop, reinterpret_cast<void*>(std::intptr_t{lfd}));
  int sig = 0;
  sigwait(&stop, &sig);
  // The connection threads are blocked in recv: ending the process ends them.
  ::close(lfd);
  std::_Exit(0);
}
