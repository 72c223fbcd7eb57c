#pragma once
// weave::net::UdpSocket: datagrams from fibers (asyncio's datagram endpoints, fiber style).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "weave/detail/source_location.hpp"
#include "weave/io.hpp"
#include "weave/net/address.hpp"

namespace weave {
class Loop;
}

namespace weave::net {

/// One datagram received: its size and sender.
struct Datagram {
  /// Bytes stored in the buffer.
  std::size_t size = 0;
  /// Who sent it.
  SocketAddress from;
  /// True if the datagram was larger than the buffer and its end was lost.
  bool truncated = false;
};

/// A UDP socket on the loop's reactor. Unconnected (bind(), open()): send_to() any address,
/// recv_from() anyone. Connected (connect()): send() and recv() with one peer, and the
/// kernel filters other senders out and reports ICMP errors (ECONNREFUSED) on the socket.
///
/// @par Example
/// @code
/// auto sock = weave::net::UdpSocket::bind("127.0.0.1", 0);
/// char buf[1500];
/// auto d = sock.recv_from(buf);
/// sock.send_to(std::string_view(buf, d.size), d.from);  // echo
/// @endcode
///
/// @par Cancellation
/// Sends and receives are checkpoints; a cancelled receive takes no datagram from the socket.
/// @par Errors
/// std::system_error with the errno (ECONNREFUSED on a connected socket whose peer has no
/// listener, EMSGSIZE for a datagram too large); EINTR and EAGAIN never reach the caller;
/// std::logic_error on an empty or closed socket, or outside a fiber.
/// @par Thread safety
/// Loop-affine.
class UdpSocket {
 public:
  UdpSocket() noexcept = default;
  /// A socket bound to `host`:`port` (numeric, a name, or "" for 0.0.0.0); port 0: the kernel
  /// chooses (see local_address()). A name needs a fiber (it is resolved on the executor).
  static UdpSocket bind(std::string_view host, std::uint16_t port, bool reuse_port = false);
  static UdpSocket bind(const SocketAddress& address, bool reuse_port = false);
  /// An unbound socket of `family` (AF_INET or AF_INET6), for sending (the kernel binds it to
  /// an ephemeral port on the first send).
  static UdpSocket open(int family = AF_INET);
  /// A socket connected to `host`:`port` (a name is resolved; needs a fiber then).
  static UdpSocket connect(std::string_view host, std::uint16_t port);
  static UdpSocket connect(const SocketAddress& peer);
  /// Adopts a non-blocking datagram socket.
  explicit UdpSocket(int fd);
  UdpSocket(UdpSocket&&) noexcept = default;
  UdpSocket& operator=(UdpSocket&& other) noexcept {
    if (this != &other) {
      close();
      watch_ = std::move(other.watch_);
    }
    return *this;
  }
  ~UdpSocket() { close(); }

  /// Sends one datagram to `to`, waiting while the send buffer is full. Returns its size.
  std::size_t send_to(std::string_view data, const SocketAddress& to,
                      SourceLocation where = SourceLocation::current());
  /// Receives one datagram into `buffer` (a datagram larger than the buffer is truncated and
  /// says so).
  Datagram recv_from(std::span<char> buffer, SourceLocation where = SourceLocation::current());
  /// Connected mode: sends to, and receives from, the peer.
  std::size_t send(std::string_view data, SourceLocation where = SourceLocation::current());
  Datagram recv(std::span<char> buffer, SourceLocation where = SourceLocation::current()) {
    return recv_from(buffer, where);
  }

  SocketAddress local_address() const;
  /// The peer of a connected socket. @throws std::system_error(ENOTCONN) otherwise.
  SocketAddress peer_address() const;
  int fd() const noexcept { return watch_.fd(); }
  bool valid() const noexcept { return watch_.valid() && !watch_.closed(); }
  /// Closes the socket, waking fibers waiting on it with EBADF. Idempotent.
  void close() noexcept { watch_.close(); }

 private:
  weave::IoWatch watch_;
};

}  // namespace weave::net
