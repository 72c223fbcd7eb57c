// Name resolution on the executor.

#include "weave/net/dns.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include "internal.hpp"
#include "weave/executor.hpp"
#include "weave/loop.hpp"
#include "weave/this_fiber.hpp"

namespace weave::net {

namespace {

class GaiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

std::vector<AddrInfo> blocking_getaddrinfo(const std::string& host, const std::string& service,
                                           const ResolveOptions& options) {
  addrinfo hints{};
  hints.ai_family = options.family;
  hints.ai_socktype = options.socktype;
  hints.ai_flags = options.flags;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                         service.empty() ? nullptr : service.c_str(), &hints, &res);
  if (rc == EAI_SYSTEM)
    throw std::system_error(errno, std::generic_category(),
                            "weave::net::getaddrinfo(" + host + ", " + service + ")");
  if (rc != 0)
    throw std::system_error(rc, gai_category(),
                            "weave::net::getaddrinfo(" + host + ", " + service + ")");
  std::vector<AddrInfo> out;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    AddrInfo ai;
    ai.family = p->ai_family;
    ai.socktype = p->ai_socktype;
    ai.protocol = p->ai_protocol;
    ai.address = SocketAddress(p->ai_addr, p->ai_addrlen);
    if (p->ai_canonname) ai.canonical_name = p->ai_canonname;
    out.push_back(std::move(ai));
  }
  ::freeaddrinfo(res);
  return out;
}

}  // namespace

const std::error_category& gai_category() noexcept {
  static const GaiCategory category;
  return category;
}

std::vector<AddrInfo> getaddrinfo(std::string_view host, std::string_view service,
                                  const ResolveOptions& options) {
  std::string h(host), s(service);
  if (this_fiber::in_fiber())
    return weave::to_thread([h, s, options] { return blocking_getaddrinfo(h, s, options); });
  // Outside a fiber there is nothing to suspend: resolving in place is fine as long as no loop
  // is running on this thread (it would be blocked).
  if (Loop* l = Loop::current_or_null(); l != nullptr && l->is_running())
    throw std::logic_error(
        "weave::net::getaddrinfo: called from a callback of a running loop (it would block the "
        "loop); call it from a fiber");
  return blocking_getaddrinfo(h, s, options);
}

std::vector<SocketAddress> resolve(std::string_view host, std::uint16_t port,
                                   const ResolveOptions& options) {
  SocketAddress a;
  if (SocketAddress::try_parse(host, port, a)) {
    if (options.family == AF_UNSPEC || options.family == a.family()) return {a};
  }
  std::vector<SocketAddress> out;
  for (AddrInfo& ai : getaddrinfo(host, std::to_string(port), options)) {
    if (std::find(out.begin(), out.end(), ai.address) == out.end())
      out.push_back(std::move(ai.address));
  }
  return out;
}

}  // namespace weave::net
