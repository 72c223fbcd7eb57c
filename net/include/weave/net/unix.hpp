#pragma once
// Unix-domain stream sockets: open_unix_connection() and start_unix_server().

#include <string_view>
#include <type_traits>
#include <utility>

#include "weave/detail/source_location.hpp"
#include "weave/net/server.hpp"
#include "weave/net/stream.hpp"

namespace weave::net {

/// Connects to the Unix stream socket at `path` ("@name" for the abstract namespace).
/// @par Cancellation
/// A checkpoint.
/// @par Errors
/// std::system_error (ENOENT: no such socket, ECONNREFUSED: nobody listens, EAGAIN is never
/// seen); std::invalid_argument for a path that does not fit; std::logic_error outside a fiber.
Stream open_unix_connection(std::string_view path, StreamOptions options = {},
                            SourceLocation where = SourceLocation::current());

/// Listens on the Unix stream socket at `path` and runs `handler` per connection, like
/// start_server(). A stale socket file left at `path` by an earlier process is removed first
/// (another kind of file is not: that is EADDRINUSE); close() removes the file again.
/// "@name" listens in the abstract namespace (no file).
template <class F>
requires std::is_invocable_v<F&, Stream&> || std::is_invocable_v<F&, Stream&&> Server
start_unix_server(F&& handler, std::string_view path, ServerOptions options = {}) {
  ConnectionHandler h;
  if constexpr (std::is_invocable_v<F&, Stream&>)
    h = std::forward<F>(handler);
  else
    h = [f = std::forward<F>(handler)](Stream& s) mutable { f(std::move(s)); };
  return start_server(std::move(h), {SocketAddress::unix_path(path)}, std::move(options));
}

}  // namespace weave::net
