#pragma once
// Low-level socket helpers: an owned fd, non-blocking sockets, connect and accept from fibers,
// listening sockets. Streams, servers and the Protocol API are built on these.

#include <cstdint>
#include <utility>

#include "weave/detail/source_location.hpp"
#include "weave/io.hpp"
#include "weave/net/address.hpp"

namespace weave::net {

/// An owned file descriptor, closed by the destructor (a `std::unique_ptr` for fds).
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives the fd up without closing it.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the fd held (if any) and holds `fd` instead.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// Options of a listening socket.
struct ListenOptions {
  /// listen()'s backlog (the kernel caps it at net.core.somaxconn).
  int backlog = 1024;
  /// SO_REUSEADDR (TCP only): rebinding a port in TIME_WAIT works at once.
  bool reuse_address = true;
  /// SO_REUSEPORT: several sockets (one loop per thread) share a port.
  bool reuse_port = false;
  /// IPV6_V6ONLY for an IPv6 address: true keeps the socket to IPv6 (so an IPv4 socket can
  /// bind the same port beside it).
  bool ipv6_only = true;
};

/// A new socket, always non-blocking and close-on-exec (SOCK_NONBLOCK | SOCK_CLOEXEC).
/// @throws std::system_error (EMFILE when out of fds).
UniqueFd make_socket(int family, int type, int protocol = 0);

/// Makes `fd` non-blocking (a no-op if it already is). @throws std::system_error.
void set_nonblocking(int fd);

/// TCP_NODELAY on or off (a no-op on non-TCP sockets). @throws std::system_error.
void set_nodelay(int fd, bool on = true);

/// A bound, listening, non-blocking stream socket for `address` (TCP or Unix).
/// @throws std::system_error (EADDRINUSE, EACCES, EMFILE, ...), with the address in the message.
UniqueFd listen_socket(const SocketAddress& address, const ListenOptions& options = {});

/// Connects a new non-blocking socket of `type` (SOCK_STREAM or SOCK_DGRAM) to `address`,
/// suspending the calling fiber while the connection is in progress.
///
/// @par Cancellation
/// A checkpoint; a cancelled connect closes the half-made socket.
/// @par Errors
/// std::system_error with the connect error (ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ...) and the
/// address in the message; std::logic_error outside a fiber.
UniqueFd connect_socket(const SocketAddress& address, int type = SOCK_STREAM,
                        SourceLocation where = SourceLocation::current());

/// What accept_one() reports besides the new connection.
enum class AcceptStatus {
  accepted,        ///< a connection was accepted
  would_block,     ///< nothing is waiting (EAGAIN): wait for readability and retry
  out_of_fds,      ///< EMFILE/ENFILE/ENOBUFS/ENOMEM: back off until fds are freed
  transient_error  ///< the connection went before it was accepted (ECONNABORTED, ...): retry
};

/// One non-blocking accept4() on `listener` (SOCK_NONBLOCK | SOCK_CLOEXEC): never suspends,
/// never throws for the conditions in AcceptStatus. `out` receives the connection and `peer`
/// (if not null) its address. `error` (if not null) receives errno for the non-accepted cases.
/// @throws std::system_error for anything else (EBADF, EINVAL: a listener that is not one).
AcceptStatus accept_one(int listener, UniqueFd& out, SocketAddress* peer = nullptr,
                        int* error = nullptr);

}  // namespace weave::net
