#pragma once
// weave::net::SocketAddress: an IPv4, IPv6 or Unix-domain socket address.

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace weave::net {

/// A socket address of any family the net layer uses (AF_INET, AF_INET6, AF_UNIX), stored by
/// value (a `sockaddr_storage`), so it can be copied and kept without allocation.
///
/// @par Example
/// @code
/// auto a = weave::net::SocketAddress::parse("127.0.0.1", 8080);   // numeric only, no DNS
/// auto b = weave::net::SocketAddress::parse("::1", 8080);
/// auto u = weave::net::SocketAddress::unix_path("/tmp/app.sock");
/// std::cout << a.to_string();  // "127.0.0.1:8080"; IPv6 as "[::1]:8080"
/// @endcode
///
/// @par Thread safety
/// A value type: distinct objects may be used from any thread.
class SocketAddress {
 public:
  /// An empty address (family() is AF_UNSPEC).
  SocketAddress() noexcept;
  /// Copies `len` bytes of `addr`. @throws std::invalid_argument if len is too large.
  SocketAddress(const sockaddr* addr, socklen_t len);

  /// A numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "fe80::1%eth0") and a port; no name
  /// resolution (use resolve() or getaddrinfo() in dns.hpp for names).
  /// @throws std::invalid_argument if `host` is not a numeric address.
  static SocketAddress parse(std::string_view host, std::uint16_t port);
  /// Like parse(), but returns false instead of throwing.
  static bool try_parse(std::string_view host, std::uint16_t port, SocketAddress& out) noexcept;
  /// The IPv4 wildcard (0.0.0.0) or loopback (127.0.0.1) address with `port`.
  static SocketAddress ipv4_any(std::uint16_t port) noexcept;
  static SocketAddress ipv4_loopback(std::uint16_t port) noexcept;
  /// A Unix-domain address. A path that begins with '@' or '\0' names the Linux abstract
  /// namespace (no file is created).
  /// @throws std::invalid_argument if the path is empty or longer than sun_path allows.
  static SocketAddress unix_path(std::string_view path);

  /// The address of `fd`'s own end (getsockname) or of its peer (getpeername).
  /// @throws std::system_error.
  static SocketAddress local_of(int fd);
  static SocketAddress peer_of(int fd);

  /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
  int family() const noexcept;
  /// The port (IPv4/IPv6), 0 otherwise.
  std::uint16_t port() const noexcept;
  /// A copy with another port (IPv4/IPv6; other families are returned unchanged).
  SocketAddress with_port(std::uint16_t port) const noexcept;
  /// The numeric host ("127.0.0.1", "::1"), the path of a Unix address ("@name" for an
  /// abstract one), or "" for an empty address.
  std::string host() const;
  /// "127.0.0.1:80", "[::1]:80", "/tmp/app.sock" or "@name"; "" for an empty one.
  std::string to_string() const;
  /// True for a Unix address in the abstract namespace.
  bool is_abstract() const noexcept;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  /// Sets the length after a system call filled data() (capacity() bytes at most).
  void resize(socklen_t len) noexcept { len_ = len; }
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }

  /// Byte-wise equality of the meaningful part.
  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t len_ = 0;
};

}  // namespace weave::net
