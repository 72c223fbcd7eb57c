// Unix-domain stream sockets.

#include "weave/net/unix.hpp"

#include "internal.hpp"

namespace weave::net {

Stream open_unix_connection(std::string_view path, StreamOptions options, SourceLocation where) {
  detail::LoopAccess::require_fiber("weave::net::open_unix_connection");
  return open_connection(SocketAddress::unix_path(path), options, where);
}

}  // namespace weave::net
