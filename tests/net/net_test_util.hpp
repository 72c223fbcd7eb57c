#pragma once
// Helpers shared by the net layer's tests.

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <system_error>
#include <utility>

#include "weave/net/stream.hpp"

namespace weave_test {

/// How many fds this process has open (entries of /proc/self/fd, minus the one that reads it).
inline int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) throw std::system_error(errno, std::generic_category(), "opendir /proc/self/fd");
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;
}

/// True when built with ASan or TSan (heavy tests scale down).
constexpr bool kSanitized =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

/// A connected pair of raw non-blocking Unix stream sockets.
inline std::pair<int, int> raw_socketpair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  return {fds[0], fds[1]};
}

/// A string of `n` bytes with a recognisable pattern (no '\n').
inline std::string pattern(std::size_t n, std::size_t seed = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

}  // namespace weave_test
