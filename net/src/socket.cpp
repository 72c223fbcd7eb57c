// Low-level socket helpers: non-blocking sockets, listen, connect from fibers, accept.

#include "weave/net/socket.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "internal.hpp"
#include "weave/io.hpp"
#include "weave/loop.hpp"

namespace weave::net {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

UniqueFd make_socket(int family, int type, int protocol) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "weave::net: socket");
  return UniqueFd(fd);
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw std::system_error(errno, std::generic_category(), "weave::net: fcntl");
  if (flags & O_NONBLOCK) return;
  if (::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "weave::net: fcntl(O_NONBLOCK)");
}

void set_nodelay(int fd, bool on) {
  int v = on ? 1 : 0;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0 && errno != EOPNOTSUPP &&
      errno != ENOPROTOOPT)
    throw std::system_error(errno, std::generic_category(), "weave::net: TCP_NODELAY");
}

UniqueFd listen_socket(const SocketAddress& address, const ListenOptions& options) {
  UniqueFd fd = make_socket(address.family(), SOCK_STREAM);
  int one = 1;
  bool inet = address.family() == AF_INET || address.family() == AF_INET6;
  auto fail = [&](const char* what) {
    throw std::system_error(errno, std::generic_category(),
                            std::string("weave::net: ") + what + " " + address.to_string());
  };
  if (inet && options.reuse_address &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    fail("SO_REUSEADDR on");
  if (options.reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    fail("SO_REUSEPORT on");
  if (address.family() == AF_INET6) {
    int v6only = options.ipv6_only ? 1 : 0;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
      fail("IPV6_V6ONLY on");
  }
  if (::bind(fd.get(), address.data(), address.size()) != 0) fail("bind");
  if (::listen(fd.get(), options.backlog) != 0) fail("listen on");
  return fd;
}

namespace detail {

void connect_on(weave::IoWatch& watch, const SocketAddress& address, SourceLocation where) {
  int fd = watch.fd();
  for (;;) {
    if (::connect(fd, address.data(), address.size()) == 0) return;
    // EINTR: the connect goes on in the background; calling again says EALREADY.
    if (errno == EINTR) continue;
    if (errno == EINPROGRESS || errno == EALREADY) break;
    // A Unix socket whose listener's backlog is full says EAGAIN: that is a refusal.
    throw std::system_error(errno, std::generic_category(),
                            "weave::net: connect to " + address.to_string());
  }
  for (;;) {
    watch.wait_writable(where);
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) {
      // Writable and no error: connected (a spurious edge would leave ENOTCONN here).
      if (::getpeername(fd, nullptr, &len) != 0 && errno == ENOTCONN) {
        watch.clear_writable();
        continue;
      }
      return;
    }
    throw std::system_error(err, std::generic_category(),
                            "weave::net: connect to " + address.to_string());
  }
}

}  // namespace detail

UniqueFd connect_socket(const SocketAddress& address, int type, SourceLocation where) {
  detail::LoopAccess::require_fiber("weave::net::connect_socket");
  UniqueFd fd = make_socket(address.family(), type);
  weave::IoWatch watch(fd.get());
  detail::connect_on(watch, address, where);
  return fd;  // the watch unregisters the fd and leaves it open
}

AcceptStatus accept_one(int listener, UniqueFd& out, SocketAddress* peer, int* error) {
  for (;;) {
    socklen_t len = SocketAddress::capacity();
    int fd = ::accept4(listener, peer ? peer->data() : nullptr, peer ? &len : nullptr,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (peer) peer->resize(len);
      out.reset(fd);
      return AcceptStatus::accepted;
    }
    int e = errno;
    if (error) *error = e;
    switch (e) {
      case EINTR:
        continue;
      case EAGAIN:
        return AcceptStatus::would_block;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        return AcceptStatus::out_of_fds;
      // The connection failed between the SYN and accept() (Linux passes pending network
      // errors of the new socket to accept()): nothing to do but take the next one.
      case ECONNABORTED:
      case EPROTO:
      case EPERM:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH:
        return AcceptStatus::transient_error;
      default:
        throw std::system_error(e, std::generic_category(), "weave::net: accept");
    }
  }
}

}  // namespace weave::net
