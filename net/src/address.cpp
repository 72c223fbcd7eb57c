// weave::net::SocketAddress.

#include "weave/net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace weave::net {

SocketAddress::SocketAddress() noexcept {
  std::memset(&storage_, 0, sizeof storage_);
  storage_.ss_family = AF_UNSPEC;
}

SocketAddress::SocketAddress(const sockaddr* addr, socklen_t len) : SocketAddress() {
  if (len > sizeof storage_) throw std::invalid_argument("weave::net::SocketAddress: too long");
  std::memcpy(&storage_, addr, len);
  len_ = len;
}

bool SocketAddress::try_parse(std::string_view host, std::uint16_t port,
                              SocketAddress& out) noexcept {
  // inet_pton needs a NUL-terminated string; addresses are short.
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (host.empty() || host.size() >= sizeof buf) return false;
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (::inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    out = a;
    return true;
  }
  // IPv6, with an optional "%scope" (interface name or number) and optional brackets.
  std::string_view h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string_view scope;
  if (auto pct = h.find('%'); pct != std::string_view::npos) {
    scope = h.substr(pct + 1);
    h = h.substr(0, pct);
  }
  std::memcpy(buf, h.data(), h.size());
  buf[h.size()] = '\0';
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (::inet_pton(AF_INET6, buf, &v6->sin6_addr) != 1) return false;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(port);
  if (!scope.empty()) {
    std::memcpy(buf, scope.data(), scope.size());
    buf[scope.size()] = '\0';
    unsigned idx = ::if_nametoindex(buf);
    if (idx == 0) {
      char* end = nullptr;
      unsigned long n = std::strtoul(buf, &end, 10);
      if (end == buf || *end != '\0') return false;
      idx = static_cast<unsigned>(n);
    }
    v6->sin6_scope_id = idx;
  }
  a.len_ = sizeof(sockaddr_in6);
  out = a;
  return true;
}

SocketAddress SocketAddress::parse(std::string_view host, std::uint16_t port) {
  SocketAddress a;
  if (!try_parse(host, port, a))
    throw std::invalid_argument("weave::net::SocketAddress::parse: not a numeric address: '" +
                                std::string(host) + "'");
  return a;
}

SocketAddress SocketAddress::ipv4_any(std::uint16_t port) noexcept {
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  v4->sin_family = AF_INET;
  v4->sin_port = htons(port);
  v4->sin_addr.s_addr = htonl(INADDR_ANY);
  a.len_ = sizeof(sockaddr_in);
  return a;
}

SocketAddress SocketAddress::ipv4_loopback(std::uint16_t port) noexcept {
  SocketAddress a = ipv4_any(port);
  reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty()) throw std::invalid_argument("weave::net::SocketAddress: empty Unix path");
  // A regular path needs room for its NUL; an abstract name does not use one.
  bool abstract = path.front() == '@' || path.front() == '\0';
  std::size_t room = sizeof un->sun_path - (abstract ? 0 : 1);
  if (path.size() > room)
    throw std::invalid_argument("weave::net::SocketAddress: Unix path too long (" +
                                std::to_string(path.size()) + " bytes, at most " +
                                std::to_string(room) + "): " + std::string(path));
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (abstract) {
    un->sun_path[0] = '\0';
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return a;
}

SocketAddress SocketAddress::local_of(int fd) {
  SocketAddress a;
  socklen_t len = capacity();
  if (::getsockname(fd, a.data(), &len) != 0)
    throw std::system_error(errno, std::generic_category(), "weave::net: getsockname");
  a.len_ = len;
  return a;
}

SocketAddress SocketAddress::peer_of(int fd) {
  SocketAddress a;
  socklen_t len = capacity();
  if (::getpeername(fd, a.data(), &len) != 0)
    throw std::system_error(errno, std::generic_category(), "weave::net: getpeername");
  a.len_ = len;
  return a;
}

int SocketAddress::family() const noexcept { return len_ == 0 ? AF_UNSPEC : storage_.ss_family; }

std::uint16_t SocketAddress::port() const noexcept {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

SocketAddress SocketAddress::with_port(std::uint16_t port) const noexcept {
  SocketAddress a = *this;
  if (family() == AF_INET)
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  else if (family() == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  return a;
}

bool SocketAddress::is_abstract() const noexcept {
  if (family() != AF_UNIX) return false;
  const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
  return len_ > offsetof(sockaddr_un, sun_path) && un->sun_path[0] == '\0';
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN];
  switch (family()) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                  sizeof buf);
      return buf;
    case AF_INET6: {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
      std::string s = buf;
      if (v6->sin6_scope_id != 0) s += "%" + std::to_string(v6->sin6_scope_id);
      return s;
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      std::size_t n =
          len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
      if (n == 0) return "";  // unnamed (a socketpair, an unbound client)
      if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
      return std::string(un->sun_path, ::strnlen(un->sun_path, n));
    }
    default:
      return "";
  }
}

std::string SocketAddress::to_string() const {
  switch (family()) {
    case AF_INET:
      return host() + ":" + std::to_string(port());
    case AF_INET6:
      return "[" + host() + "]:" + std::to_string(port());
    default:
      return host();
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace weave::net
