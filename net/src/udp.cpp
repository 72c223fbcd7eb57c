// weave::net::UdpSocket.

#include "weave/net/udp.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include "internal.hpp"
#include "weave/net/dns.hpp"
#include "weave/net/socket.hpp"

namespace weave::net {

namespace {

UdpSocket adopt(UniqueFd fd) {
  UdpSocket s(fd.get());
  fd.release();
  return s;
}

SocketAddress first_address(std::string_view host, std::uint16_t port, bool passive) {
  ResolveOptions o;
  o.socktype = SOCK_DGRAM;
  if (passive) o.flags = AI_PASSIVE;
  if (host.empty()) return SocketAddress::ipv4_any(port);
  auto all = resolve(host, port, o);
  if (all.empty())
    detail::throw_errno(EHOSTUNREACH, "weave::net::UdpSocket: no address for " + std::string(host));
  return all.front();
}

}  // namespace

UdpSocket::UdpSocket(int fd) {
  if (fd < 0) throw std::invalid_argument("weave::net::UdpSocket: negative fd");
  set_nonblocking(fd);
  watch_ = weave::IoWatch(fd);
}

UdpSocket UdpSocket::bind(const SocketAddress& address, bool reuse_port) {
  UniqueFd fd = make_socket(address.family(), SOCK_DGRAM);
  int one = 1;
  if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    detail::throw_errno(errno, "weave::net::UdpSocket::bind: SO_REUSEPORT");
  if (::bind(fd.get(), address.data(), address.size()) != 0)
    detail::throw_errno(errno, "weave::net::UdpSocket::bind " + address.to_string());
  return adopt(std::move(fd));
}

UdpSocket UdpSocket::bind(std::string_view host, std::uint16_t port, bool reuse_port) {
  return bind(first_address(host, port, true), reuse_port);
}

UdpSocket UdpSocket::open(int family) { return adopt(make_socket(family, SOCK_DGRAM)); }

UdpSocket UdpSocket::connect(const SocketAddress& peer) {
  UniqueFd fd = make_socket(peer.family(), SOCK_DGRAM);
  // A datagram connect only records the peer: it never blocks.
  if (::connect(fd.get(), peer.data(), peer.size()) != 0)
    detail::throw_errno(errno, "weave::net::UdpSocket::connect " + peer.to_string());
  return adopt(std::move(fd));
}

UdpSocket UdpSocket::connect(std::string_view host, std::uint16_t port) {
  return connect(first_address(host, port, false));
}

namespace {

void require_open(const weave::IoWatch& w, const char* what) {
  if (!w.valid()) throw std::logic_error(std::string(what) + " on an empty UdpSocket");
  if (w.closed()) detail::throw_errno(EBADF, std::string(what) + ": the socket is closed");
}

// Waits for `ready` on the watch; a closed watch becomes EBADF with the operation's name.
template <class Wait>
void wait_or_ebadf(Wait&& wait, const char* what) {
  try {
    wait();
  } catch (const std::system_error&) {
    detail::throw_errno(EBADF, std::string(what) + ": the socket was closed");
  }
}

}  // namespace

std::size_t UdpSocket::send_to(std::string_view data, const SocketAddress& to,
                               SourceLocation where) {
  static constexpr const char* what = "weave::net::UdpSocket::send_to";
  require_open(watch_, what);
  auto* self = detail::LoopAccess::current_task();
  if (self) detail::LoopAccess::checkpoint(self);
  for (;;) {
    ssize_t n = ::sendto(watch_.fd(), data.data(), data.size(), MSG_NOSIGNAL,
                         to.size() ? to.data() : nullptr, to.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN) detail::throw_errno(e, std::string(what) + " " + to.to_string());
    watch_.clear_writable();
    wait_or_ebadf([&] { watch_.wait_writable(where); }, what);
  }
}

std::size_t UdpSocket::send(std::string_view data, SourceLocation where) {
  return send_to(data, SocketAddress(), where);
}

Datagram UdpSocket::recv_from(std::span<char> buffer, SourceLocation where) {
  static constexpr const char* what = "weave::net::UdpSocket::recv_from";
  require_open(watch_, what);
  auto* self = detail::LoopAccess::current_task();
  if (self) detail::LoopAccess::checkpoint(self);
  for (;;) {
    Datagram d;
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_name = d.from.data();
    msg.msg_namelen = SocketAddress::capacity();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(watch_.fd(), &msg, 0);
    if (n >= 0) {
      d.from.resize(msg.msg_namelen);
      d.size = static_cast<std::size_t>(n);
      d.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
      return d;
    }
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN) detail::throw_errno(e, what);
    watch_.clear_readable();
    wait_or_ebadf([&] { watch_.wait_readable(where); }, what);
  }
}

SocketAddress UdpSocket::local_address() const {
  require_open(watch_, "weave::net::UdpSocket::local_address");
  return SocketAddress::local_of(watch_.fd());
}

SocketAddress UdpSocket::peer_address() const {
  require_open(watch_, "weave::net::UdpSocket::peer_address");
  return SocketAddress::peer_of(watch_.fd());
}

}  // namespace weave::net
