#pragma once
// Internals shared by the net layer's sources.

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>

#include "weave/detail/source_location.hpp"
#include "weave/io.hpp"
#include "weave/loop.hpp"
#include "weave/net/address.hpp"
#include "weave/net/socket.hpp"
#include "weave/net/stream.hpp"

namespace weave::net::detail {

using LoopAccess = ::weave::detail::LoopAccess;

/// The net layer's access to a Stream's insides.
struct StreamAccess {
  static StreamState* state(const Stream& s) noexcept { return s.state_; }
  /// A Stream over a socket the net layer made (non-blocking and close-on-exec already): no
  /// system call besides the reactor's registration.
  static Stream adopt_socket(UniqueFd fd, const StreamOptions& options, Loop& loop) {
    return adopt(std::move(fd), options, loop, true);
  }
  static Stream adopt(UniqueFd fd, const StreamOptions& options, Loop& loop, bool socket);
};

/// A Stream over `fd` (non-blocking, close-on-exec) whose first bytes are `unread`: bytes
/// already taken from the fd by someone else (a Protocol transport handing its connection to
/// a fiber), read before anything new from the fd.
Stream adopt_with_prefix(UniqueFd fd, std::string_view unread, const StreamOptions& options,
                         Loop& loop);

/// Connects the socket behind `watch` to `address`, suspending while it is in progress.
void connect_on(weave::IoWatch& watch, const SocketAddress& address, SourceLocation where);

[[noreturn]] inline void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::generic_category(), what);
}

/// Errors that only say the peer went away (or never came).
inline bool is_connection_lost(int e) noexcept {
  return e == ECONNRESET || e == EPIPE || e == ETIMEDOUT || e == ECONNABORTED || e == ENOTCONN ||
         e == ESHUTDOWN || e == EHOSTUNREACH || e == ENETUNREACH;
}

}  // namespace weave::net::detail
