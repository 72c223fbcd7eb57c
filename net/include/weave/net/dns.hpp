#pragma once
// Name resolution on the executor: getaddrinfo() without blocking the loop.

#include <netdb.h>  // the AI_* flags of ResolveOptions

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "weave/net/address.hpp"

namespace weave::net {

/// What getaddrinfo() should look for (its `hints`).
struct ResolveOptions {
  /// AF_UNSPEC (IPv4 and IPv6), AF_INET or AF_INET6.
  int family = AF_UNSPEC;
  /// SOCK_STREAM, SOCK_DGRAM, or 0 for any.
  int socktype = SOCK_STREAM;
  /// AI_* flags: AI_PASSIVE (wildcard address for an empty host), AI_CANONNAME,
  /// AI_NUMERICHOST, AI_ADDRCONFIG, ...
  int flags = 0;
};

/// One result of getaddrinfo().
struct AddrInfo {
  int family = 0;
  int socktype = 0;
  int protocol = 0;
  SocketAddress address;
  /// The canonical name (only with AI_CANONNAME, on the first result).
  std::string canonical_name;
};

/// The category of getaddrinfo()'s EAI_* error codes (message from gai_strerror).
const std::error_category& gai_category() noexcept;

/// Resolves `host` and `service` (a port number or a service name such as "http") with
/// getaddrinfo(3) on the default executor (weave::to_thread), so the loop keeps running while
/// the resolver blocks. An empty `host` means the local host (with AI_PASSIVE: the wildcard).
///
/// @par Example
/// @code
/// for (const auto& ai : weave::net::getaddrinfo("localhost", "8080"))
///   std::cout << ai.address.to_string() << "\n";   // [::1]:8080, 127.0.0.1:8080
/// @endcode
/// @par Cancellation
/// A checkpoint: a cancelled lookup returns at once with weave::Cancelled; the resolver call
/// itself cannot be interrupted and finishes on its thread, its result dropped.
/// @par Errors
/// std::system_error in gai_category() (EAI_NONAME for an unknown host, EAI_AGAIN, ...), with
/// the host in the message; std::logic_error outside a fiber.
std::vector<AddrInfo> getaddrinfo(std::string_view host, std::string_view service,
                                  const ResolveOptions& options = {});

/// The addresses of `host` with `port`: numeric hosts ("127.0.0.1", "::1") are parsed at once,
/// without a thread hop; names go through getaddrinfo(). Duplicates are removed, the
/// resolver's order (RFC 6724) is kept.
///
/// @par Cancellation
/// A checkpoint when a name must be resolved (see getaddrinfo()).
/// @par Errors
/// As getaddrinfo().
std::vector<SocketAddress> resolve(std::string_view host, std::uint16_t port,
                                   const ResolveOptions& options = {});

}  // namespace weave::net
